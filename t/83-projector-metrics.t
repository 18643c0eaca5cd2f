#!/usr/bin/perl

# commerce-projector's /metrics: valid exposition (promtool check metrics),
# HEAD, the process_* series, the outbox backlog and the age of its oldest
# row, the consumer lag of each partition it owns (and only those: two
# projectors show each partition once).

use strict;
use warnings;

use IO::Socket::INET;
use Test::More;

use lib 't/lib';
use CommerceProj;

my $p = CommerceProj->new(partitions => 4);
my $mport = $p->t->port('METRICS');
my $proj = $p->start_projector('--metrics.port', $mport,
                               '--gauge_interval', '200ms');

# One request on a connection of its own: (head, body).
sub http {
    my ($port, $req) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or return;
    print $s $req;
    local $/;
    my $r = <$s> // '';
    return split /\r\n\r\n/, $r, 2;
}

sub scrape {
    my ($port) = @_;
    my (undef, $body) = http($port // $mport,
                             "GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n");
    return $body // '';
}

sub value {
    my ($name, $body) = @_;
    $body //= scrape();
    return $body =~ /^\Q$name\E (\S+)$/m ? $1 : undef;
}

# { partition => lag } of commerce.inbound in a scrape
sub lags {
    my ($body) = @_;
    my %l = ($body // scrape())
        =~ /^projector_consumer_lag\{topic="commerce\.inbound",partition="(\d+)"\} (\d+)$/mg;
    return \%l;
}

sub total_lag { my $l = lags(); my $t = 0; $t += $_ for values %$l; $t }

ok($p->wait_for(sub { keys %{ lags() } == 4 }),
   'a lag series for each of the 4 partitions');
is_deeply(lags(), { 0 => 0, 1 => 0, 2 => 0, 3 => 0 }, 'all caught up');

my $body = scrape();
like($body, qr/^# TYPE projector_consumer_lag gauge$/m, 'lag: a gauge');
is(value('projector_outbox_backlog_rows', $body), 0, 'outbox empty');
is(value('projector_outbox_oldest_age_seconds', $body), 0, 'no oldest row');
ok(value('process_resident_memory_bytes', $body) > 0, 'process RSS');
ok(value('process_open_fds', $body) > 0, 'process open fds');
ok(defined value('process_cpu_seconds_total', $body), 'process CPU');
ok(value('process_start_time_seconds', $body) > 1.5e9, 'process start time');

SKIP: {
    skip 'no promtool (Debian package prometheus)', 1
        unless -x '/usr/bin/promtool';
    open my $pt, '|-', 'promtool check metrics >/dev/null 2>&1' or die;
    print $pt $body;
    ok(close($pt), 'promtool check metrics accepts the exposition');
}

my ($head, $rest) = http($mport, "HEAD /metrics HTTP/1.0\r\n\r\n");
like($head, qr{^HTTP/1\.1 200 OK\r\n}, 'HEAD /metrics: 200');
like($head, qr/Content-Length: [1-9]\d*/, 'with the length of the body');
is($rest // '', '', 'and no body');
($head) = http($mport, "PUT /metrics HTTP/1.0\r\n\r\n");
like($head, qr/^HTTP\/1\.1 405 .*Allow: GET, HEAD/s, 'PUT: 405');

# --- the outbox: a row that cannot be done yet ------------------------------

# With Redis stopped, the read-model writer cannot write a value: its row
# stays, and has waited 100 s already.
$p->t->pause_redis;
$p->sql("INSERT INTO outbox (kind, rm_key, rm_version, payload, created_at)"
        . " VALUES ('redis', 'test:gauges', 1, 'x', now() - interval '100 s')");
ok($p->wait_for(sub { (value('projector_outbox_backlog_rows') // 0) >= 1
                      && (value('projector_outbox_oldest_age_seconds') // 0)
                         >= 100 }),
   'backlog and the age of the oldest row');
$p->t->resume_redis;
ok($p->wait_for(sub { value('projector_outbox_backlog_rows') == 0
                      && value('projector_outbox_oldest_age_seconds') == 0 }),
   'both back to 0 once Redis is back');
is($p->redis('GET', 'test:gauges'), 'x', 'the row was done');

# --- the lag: messages the projector cannot take ---------------------------

# A lock on the offsets holds the next batch in its transaction, so the
# projector takes no more messages meanwhile: one message to get it
# stuck there, then 30 more that wait.
open my $lock, '|-', 'psql', '-Atq', '-v', 'ON_ERROR_STOP=1', $p->conninfo
    or die "psql: $!";
$lock->autoflush(1);
print $lock "BEGIN; LOCK TABLE consumer_offsets IN ACCESS EXCLUSIVE MODE;\n";
ok($p->wait_for(sub { $p->sql("SELECT count(*) FROM pg_locks WHERE granted"
                              . " AND relation = 'consumer_offsets'::regclass"
                              . " AND mode = 'AccessExclusiveLock'") == 1 }),
   'offsets locked');

my $bad = '{"commands": 1}';        # dead-lettered: no catalog needed
$p->produce(key => 'lag-0', body => $bad, headers => { source => 'canonical' });
ok($p->wait_for(sub { $p->sql("SELECT count(*) FROM pg_stat_activity"
                              . " WHERE application_name = 'commerce-projector'"
                              . " AND wait_event_type = 'Lock'") == 1 }),
   'the batch waits for the lock');
$p->produce_many({ source => 'canonical' }, map { "lag-$_\t$bad" } 1 .. 30);
ok($p->wait_for(sub { total_lag() == 30 }), 'the 30 messages not taken are '
   . 'the lag') or diag(explain(lags()));

close $lock;
ok($p->wait_for(sub { total_lag() == 0 }), 'lag 0 once they are taken');
is($p->sql('SELECT count(*) FROM dead_letters'), 31, 'all 31 dead-lettered');

# --- two projectors: each partition in the lag of one ----------------------

my $mport2 = $p->t->port('METRICS2');
my $proj2 = $p->start_projector('--metrics.port', $mport2,
                                '--gauge_interval', '200ms');
ok($p->wait_for(sub {
    my ($a, $b) = (lags(), lags(scrape($mport2)));
    keys %$a && keys %$b && keys(%$a) + keys(%$b) == 4
        && !grep { exists $b->{$_} } keys %$a }),
   'after the rebalance, each partition is in the lag of one projector');

is($p->stop_proc($proj2, 'TERM'), 0, 'second projector: SIGTERM exit 0');
is($p->stop_proc($proj, 'TERM'), 0, 'SIGTERM exit 0');

$p->stop;
done_testing();
