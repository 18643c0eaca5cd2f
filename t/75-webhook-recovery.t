#!/usr/bin/perl
# Webhooks through failures and back: no in-flight mark is left that no
# delivery is behind (Redis frozen, a message that cannot be queued), a
# 503 within commerce_kafka_delivery_timeout and at once while the brokers
# are known to be down (the Kafka circuit breaker), the first webhook after
# the brokers are back accepted, and a producer that could not be created
# at worker start created again without a restart.
#
# Real nginx, redis-server and commerce-devbroker.  Behaviour, not speed:
# no check here depends on how fast the machine is, beyond the client's
# own timeouts.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep);

use CommerceBroker qw(wait_for);
use CommerceTest;

CommerceBroker->skip_unless_available;

my $t = CommerceTest->new;
my $tag = sprintf '%08x', int rand 0xffffffff;

my $broker = CommerceBroker->new($t, consume_timeout => 60);
my $bs = $broker->bootstrap;

$t->start_redis;

$t->write_nginx_conf(<<"EOF");
    commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;
    commerce_redis_timeout 300ms;
    commerce_redis_reconnect_min 10ms;
    commerce_redis_reconnect_max 100ms;
    commerce_redis_breaker_timeout 200ms;

    commerce_kafka_brokers $bs;
    commerce_kafka_delivery_timeout 2s;
    commerce_kafka_breaker_timeout 500ms;

    server {
        listen 127.0.0.1:%%PORT_HTTP%%;

        location = /wh {
            commerce_webhook shop;
            commerce_webhook_topic r.dedup;
            commerce_webhook_delivery_id \$http_x_delivery;
            commerce_webhook_dedup on;
            commerce_webhook_inflight_ttl 1h;
        }
    }
EOF

$t->start_nginx;

sub decode {
    my ($s) = @_;
    my $v = eval { JSON::PP->new->decode($s) };
    return $v // {};
}

sub post {
    my ($id, %o) = @_;
    return $t->http(POST => '/wh', 'X-Delivery' => $id,
                    -body => qq({"id":"$id"}), -timeout => $o{timeout} // 30);
}

sub rget { $t->redis_cmd('GET', "wh:dedup:shop:$_[0]") }

ok(wait_for(sub { post("warmup-$tag")->{status} == 202 }, 200),
   'warm-up delivery accepted');

# --------------------------------------------------- Redis frozen 1.5 s ---

# The claims sent while Redis is frozen time out (503 dedup_unavailable);
# Redis executes them when it thaws.  They must set no mark then: nobody
# is publishing those deliveries, and with a mark their retries would get
# 409 delivery_in_progress for the whole in-flight TTL (1 h here).
$t->pause_redis;

my @frozen = map { "frozen-$tag-$_" } 1 .. 4;
my @during = map { post($_)->{status} } @frozen;
is_deeply(\@during, [ (503) x 4 ], 'Redis frozen: the deliveries get 503');

sleep 1;
$t->resume_redis;

ok(wait_for(sub { defined $t->redis_cmd('PING') }, 100), 'Redis thawed');

# once nginx uses Redis again, every retry is new: no 409 in between
my %seen;
for my $id (@frozen) {
    my $s = 0;
    for (1 .. 100) {
        $s = post($id)->{status};
        $seen{$s}++;
        last if $s == 202 || $s == 409;
        sleep 0.05;
    }
    is($s, 202, "$id retried after the freeze: 202");
}
ok(!$seen{409}, 'no 409 delivery_in_progress after Redis is back')
    or diag(explain \%seen);
like(rget($frozen[0]), qr/^done:/, 'and the retry is marked done');

# ------------------------------ brokers down, breaker off: the timeout ---

# Without the breaker every delivery waits for the broker, bounded by the
# configured 2 s: its 503 comes before a client's 3.5 s timeout (not after
# 2 s + 5 s).  The in-flight mark stays while librdkafka still holds the
# message, and goes with its report.
$t->write_nginx_conf(<<"EOF", name => 'slow');
    commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;
    commerce_kafka_brokers $bs;
    commerce_kafka_delivery_timeout 2s;
    commerce_kafka_breaker_threshold 0;

    server {
        listen 127.0.0.1:%%PORT_HTTP4%%;
        location = /wh {
            commerce_webhook shop;
            commerce_webhook_topic r.dedup;
            commerce_webhook_delivery_id \$http_x_delivery;
            commerce_webhook_dedup on;
            commerce_webhook_inflight_ttl 1h;
        }
    }
EOF

$t->start_nginx(name => 'slow', port => $t->port('HTTP4'));

my $spost = sub {
    $t->http(POST => '/wh', -port => $t->port('HTTP4'), 'X-Delivery' => $_[0],
             -body => qq({"id":"$_[0]"}), -timeout => $_[1] // 30);
};

ok(wait_for(sub { $spost->("slow-warmup-$tag")->{status} == 202 }, 200),
   'breaker off: warm-up accepted');

$broker->control('down all');

my $r = $spost->("slow-$tag", 3.5);
is($r->{status}, 503, 'brokers down: 503 within the delivery timeout');
is(decode($r->{body})->{error}, 'broker_unavailable', '... broker_unavailable');
ok(wait_for(sub { !defined rget("slow-$tag") }, 200),
   '... and its in-flight mark released with the report');

$broker->control('up all');

my %slow;
my $s = 0;
for (1 .. 200) {
    $s = $spost->("slow-$tag")->{status};
    $slow{$s}++;
    last if $s == 202;
    sleep 0.05;
}
is($s, 202, 'brokers back: its retry is accepted');
ok(!$slow{409}, '... never taken for a delivery in progress')
    or diag(explain \%slow);

$t->stop_nginx(name => 'slow');

# ---------------------------------------------- brokers down: breaker ---

$broker->control('down all');

# The first delivery gets its 503 within the delivery timeout; then the
# breaker knows: deliveries are refused without being queued.
$r = post("first-$tag", timeout => 3.5);
is($r->{status}, 503, 'brokers down: 503');
ok(wait_for(sub { !defined rget("first-$tag") }, 200),
   '... and its in-flight mark is released');

my $fast;
ok(wait_for(sub {
        $fast = post("fast-$tag-" . int rand 1e9, timeout => 3.5);
        $fast->{status} == 503
            && decode($fast->{body})->{message} =~ /cannot take/;
    }, 40),
   'the brokers known down: 503 at once ("cannot take the webhook now")');
ok($fast->{headers}{'retry-after'}, '... with Retry-After');
ok(scalar $t->log_grep(qr/breaker \S+ -> open for /),
   'the breaker opening is logged');

# A delivery refused by the breaker was claimed first: the claim is
# released, so that its retry is not taken for one in progress.
my $refused = "refused-$tag";
ok(wait_for(sub {
        my $x = post($refused, timeout => 3.5);
        $x->{status} == 503 && decode($x->{body})->{message} =~ /cannot take/;
    }, 40), 'a claimed delivery refused by the breaker: 503');
ok(!defined rget($refused), '... its in-flight mark is released');

# ------------------------------------------------------- brokers back ---

$broker->control('up all');

my %back;
$s = 0;
for (1 .. 200) {
    $s = post($refused, timeout => 3.5)->{status};
    $back{$s}++;
    last if $s == 202;
    sleep 0.05;
}
is($s, 202, 'brokers back: the retry is accepted');
ok(!$back{409}, '... never taken for a delivery in progress')
    or diag(explain \%back);
ok(scalar $t->log_grep(qr/breaker \S+ -> closed for /),
   'the breaker closed again');
is(scalar(grep { $_->{value} eq qq({"id":"$refused"}) }
          $broker->consume('r.dedup')), 1, 'published once');

# ------------------------- a producer that cannot be created at start ---

# TLS with a CA file that is not there yet: librdkafka refuses to create
# the producer.  Once the file is there, the worker creates it on its own.
my $ca = $t->dir . '/ca.pem';

$t->write_nginx_conf(<<"EOF", name => 'create');
    commerce_kafka_brokers $bs;
    commerce_kafka_property security.protocol ssl;
    commerce_kafka_property ssl.ca.location $ca;

    server {
        listen 127.0.0.1:%%PORT_HTTP2%%;
        location /wh { commerce_webhook shop; }
    }
EOF

$t->start_nginx(name => 'create', port => $t->port('HTTP2'));

ok(wait_for(sub { $t->log_grep(qr/creating the producer again/, 'create') },
            200),
   'no producer at worker start: creation is tried again');
$r = $t->http(POST => '/wh', -port => $t->port('HTTP2'), -body => 'x');
is($r->{status}, 503, 'meanwhile: 503');

my $key = $t->dir . '/ca.key';
system("openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=commerce-test "
       . "-days 1 -keyout '$key' -out '$ca' >/dev/null 2>&1") == 0
    or BAIL_OUT('openssl req failed');

ok(wait_for(sub { $t->log_grep(qr/producer \S+ created/, 'create') }, 400),
   'the file there: the producer is created, without a restart');

$t->stop_nginx(name => 'create');

# ------------------------------------ a fatal error of the idempotent one ---

# t/lib/rdkafka_fatal_plugin.c raises a fatal error in the producer when a
# file appears (librdkafka's rd_kafka_test_fatal_error()).  The delivery
# waiting meanwhile gets 503, never 202; the producer is created again and
# the next webhook is accepted.
SKIP: {
    my $so = $t->dir . '/fatal_plugin.so';
    my $trigger = $t->dir . '/fatal.trigger';

    skip 'cannot build the librdkafka test plugin', 7
        unless system("gcc -shared -fPIC -o '$so' "
                      . "'$CommerceTest::REPO/t/lib/rdkafka_fatal_plugin.c' "
                      . "-lrdkafka -lpthread >/dev/null 2>&1") == 0;

    $t->write_nginx_conf(<<"EOF", name => 'fatal',
    commerce_kafka_brokers $bs;
    commerce_kafka_property plugin.library.paths $so;
    commerce_kafka_delivery_timeout 10s;
    commerce_kafka_breaker_threshold 0;

    server {
        listen 127.0.0.1:%%PORT_HTTP3%%;
        location /wh {
            commerce_webhook shop;
            commerce_webhook_topic r.fatal;
        }
    }
EOF
                         main => "env COMMERCE_TEST_FATAL=$trigger;");

    $t->start_nginx(name => 'fatal', port => $t->port('HTTP3'));

    my $fpost = sub {
        $t->http(POST => '/wh', -port => $t->port('HTTP3'), -body => $_[0],
                 -timeout => 30);
    };

    ok(wait_for(sub { $fpost->('before-fatal')->{status} == 202 }, 200),
       'producer with the test plugin: 202');

    $broker->control('down all');

    my $c = $t->conn(port => $t->port('HTTP3'), timeout => 30);
    $c->send_request(POST => '/wh', -body => "pending-fatal-$tag");
    sleep 0.3;

    open my $fh, '>', $trigger or die "$trigger: $!";
    close $fh;

    my $pending = $c->read_response;
    is($pending->{status}, 503,
       'the delivery pending at the fatal error: 503, not 202');

    ok(wait_for(sub { $t->log_grep(qr/fatal error: .*re-created/, 'fatal') },
                200), 'the fatal error is logged');
    ok(wait_for(sub {
            $t->log_grep(qr/producer \S+ created/, 'fatal') >= 2 }, 200),
       'and the producer created again, without a restart');

    $broker->control('up all');

    ok(wait_for(sub { $fpost->("after-fatal-$tag")->{status} == 202 }, 200),
       'the next webhook is accepted');
    is(scalar(grep { $_->{value} eq "after-fatal-$tag" }
              $broker->consume('r.fatal')), 1, '... and published');
    is(scalar(grep { $_->{value} eq "pending-fatal-$tag" }
              $broker->consume('r.fatal')), 0,
       'the one answered 503 was not published');

    $t->stop_nginx(name => 'fatal');
}

$t->stop_nginx;
$broker->stop;

$t->done;
