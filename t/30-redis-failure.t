#!/usr/bin/perl

# Redis failures: WRONGTYPE -> 502, Redis down -> fast 503 + Retry-After and
# recovery without restarting nginx, Redis stopped -> 504, clients that go
# away while their commands are pending.

use strict;
use warnings;

use JSON::PP;
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);
use lib 't/lib';
use CommerceTest;

my $t = CommerceTest->new;
my $json = JSON::PP->new->allow_nonref;

# the client gives up after 10 s: a request that takes that long has hung
my $CLIENT_TIMEOUT = 10;

$t->write_nginx_conf(<<'EOF');
commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;
commerce_redis_pool_size 2;
commerce_redis_connect_timeout 300ms;
commerce_redis_reconnect_min 20ms;
commerce_redis_reconnect_max 200ms;
commerce_redis_breaker_threshold 3;
commerce_redis_breaker_timeout 500ms;

server {
    listen 127.0.0.1:%%PORT_HTTP%%;

    commerce_redis_timeout 300ms;

    location ~ ^/v1/catalog/(?<item_id>[^/]+)$ {
        commerce_catalog_item $item_id;
    }

    location = /v1/catalog {
        commerce_catalog_list;
    }

    location ~ ^/v1/stores/(?<store_id>[^/]+)/inventory/(?<sku>[^/]+)$ {
        commerce_inventory_item $store_id $sku;
    }

    location ~ ^/v1/stores/(?<store_id>[^/]+)/inventory$ {
        commerce_inventory_list $store_id;
    }

    location ~ ^/slow/(?<item_id>[^/]+)$ {
        commerce_redis_timeout 30s;
        commerce_catalog_item $item_id;
    }
}
EOF

my %doc = map { ("item-$_" => qq({"id":"item-$_","n":$_})) } 1 .. 60;

sub seed {
    $t->redis_pipeline(
        (map { ['SET', "cat:item:$_", $doc{$_}] } sort keys %doc),
        (map { ['ZADD', 'cat:index', 0, $_] } sort keys %doc),
        ['HSET', 'inv:s1', 'k1', '{"sku":"k1"}'],
    );
}


sub get { $t->http(GET => $_[0], -timeout => $CLIENT_TIMEOUT, @_[1 .. $#_]) }


sub error_code {
    my ($r) = @_;
    my $e = eval { $json->decode($r->{body}) };
    return ref $e eq 'HASH' ? $e->{error} // '' : '';
}


# Polls until the item is served again (bounded); returns the attempts.
sub wait_healthy {
    my ($what) = @_;

    my $deadline = time + 20;
    my $n = 0;

    while (time < $deadline) {
        $n++;
        my $r = get('/v1/catalog/item-1');
        return $n if $r->{status} == 200 && $r->{body} eq $doc{'item-1'};
        sleep 0.1;
    }

    return 0;
}


# Every item, once each, sequentially and pipelined: no reply goes to the
# wrong request.
sub check_all_items {
    my ($what) = @_;

    my $bad = 0;

    for my $id (sort keys %doc) {
        my $r = get("/v1/catalog/$id");
        $bad++ unless $r->{status} == 200 && $r->{body} eq $doc{$id};
    }

    my $c = $t->conn;
    my @ids = sort keys %doc;
    $c->send_request(GET => "/v1/catalog/$_") for @ids;

    for my $id (@ids) {
        my $r = $c->read_response;
        $bad++ unless $r->{status} == 200 && $r->{body} eq $doc{$id};
    }

    is($bad, 0, "$what: every item gets its own document");
}


sub new_log_lines {
    my ($from) = @_;
    my $log = $t->slurp($t->error_log_path);
    return split /\n/, substr($log, $from);
}


# ---- nginx starts while Redis is down ---------------------------------------

$t->start_nginx;

{
    my $r = get('/v1/catalog/item-1');
    is($r->{status}, 503, 'Redis never started: 503');
    is(error_code($r), 'redis_unavailable', 'Redis never started: code');
    like($r->{headers}{'retry-after'} // '', qr/^[1-9][0-9]*$/,
         'Redis never started: Retry-After in seconds >= 1');
    is($r->{headers}{'cache-control'}, 'no-store', '503 is no-store');

    $t->start_redis;
    seed();

    ok(wait_healthy(), 'Redis started later: requests succeed')
        or diag($t->slurp($t->error_log_path));
}


# ---- WRONGTYPE -> 502 -------------------------------------------------------

{
    $t->redis_pipeline(['HSET', 'cat:item:wrong', 'f', 'v'],
                       ['SET', 'inv:wrongstore', 'x']);

    my $from = length $t->slurp($t->error_log_path);

    for (1 .. 5) {
        my $r = get('/v1/catalog/wrong');
        is($r->{status}, 502, 'item stored as a hash: 502');
        is(error_code($r), 'redis_error', 'WRONGTYPE: redis_error');
    }

    my $r = get('/v1/stores/wrongstore/inventory/k1');
    is($r->{status}, 502, 'inventory hash stored as a string: 502');
    is(error_code($r), 'redis_error', 'inventory WRONGTYPE: redis_error');

    $r = get('/v1/stores/wrongstore/inventory');
    is($r->{status}, 502, 'HSCAN on a string: 502');

    $r = get('/v1/catalog/item-2');
    is($r->{status}, 200, 'error replies do not open the circuit');

    $t->redis_cmd('RENAME', 'cat:index', 'cat:index:saved');
    $t->redis_cmd('SET', 'cat:index', 'not a zset');
    $r = get('/v1/catalog?limit=5');
    is($r->{status}, 502, 'cat:index of the wrong type: 502');
    is(error_code($r), 'redis_error', 'list WRONGTYPE: redis_error');
    $t->redis_cmd('RENAME', 'cat:index:saved', 'cat:index');

    $r = get('/v1/catalog?limit=5');
    is($r->{status}, 200, 'list back to normal');

    my @l = new_log_lines($from);
    ok((grep { /\[(?:error|warn)\]/ } @l), 'WRONGTYPE logged at error/warn')
        or diag(join "\n", @l);
}


# ---- Redis killed under load, then restarted on the same port ---------------

{
    my $stats = $t->dir . '/load-kill.txt';

    my $pid = $t->fork_child(sub {
        open my $out, '>', $stats or die;
        my $end = time + 2;
        my $i = 0;
        while (time < $end) {
            my $id = 'item-' . (1 + $i++ % 60);
            my $r = get("/v1/catalog/$id");
            my $ok = $r->{status} == 200 ? $r->{body} eq $doc{$id} : 1;
            print {$out} "$r->{status} " . ($ok ? 'ok' : 'crossed') . ' '
                         . ($r->{error} // '-') . "\n";
        }
        close $out;
    });

    sleep 0.7;
    $t->kill_redis;

    waitpid($pid, 0);
    is($?, 0, 'load child finished');

    my %st;
    my @weird;
    for (split /\n/, $t->slurp($stats)) {
        my ($s, $ok, $err) = split / /, $_, 3;
        $st{$s}++;
        push @weird, $_ if ($s ne '200' && $s ne '503') || $ok ne 'ok';
    }

    ok($st{200}, 'load before the kill got 200s');
    ok(!@weird, 'during the kill: only 200 and 503, no crossed bodies, '
                . 'no client timeout')
        or diag(join "\n", @weird[0 .. ($#weird > 20 ? 20 : $#weird)]);
    diag('statuses: ' . join ', ', map { "$_ x$st{$_}" } sort keys %st);

    my $from = length $t->slurp($t->error_log_path);
    my @st;

    for my $i (1 .. 30) {
        my $path = ('/v1/catalog/item-3', '/v1/catalog?limit=2',
                    '/v1/stores/s1/inventory/k1',
                    '/v1/stores/s1/inventory')[$i % 4];
        my $r = get($path);
        push @st, $r;
    }

    my @not503 = grep { $_->{status} != 503 } @st;
    ok(!@not503, 'Redis down: 30 requests on all endpoints get 503')
        or diag(join "\n", map { "$_->{status} " . ($_->{error} // '') }
                           @not503);
    ok(!(grep { ($_->{headers}{'retry-after'} // '') !~ /^[1-9][0-9]*$/ }
          @st), 'Redis down: every 503 has Retry-After >= 1');
    ok(!(grep { error_code($_) ne 'redis_unavailable' } @st),
       'Redis down: error code redis_unavailable');
    ok(!(grep { $_->{elapsed} >= $CLIENT_TIMEOUT } @st),
       "Redis down: no request hit the ${CLIENT_TIMEOUT}s client timeout");

    my @l = new_log_lines(0);
    ok((grep { /\[(?:error|warn)\]/ && /redis/i } @l),
       'Redis down: logged at error/warn');

    $t->start_redis;
    seed();

    ok(my $n = wait_healthy(), 'Redis restarted: requests succeed again');
    check_all_items('after the restart');
}


# ---- Redis stopped (SIGSTOP) -> 504, then back ------------------------------

{
    $t->pause_redis;

    my $r = get('/v1/catalog/item-4');
    is($r->{status}, 504, 'Redis not answering: 504');
    is(error_code($r), 'redis_timeout', 'Redis not answering: redis_timeout');
    is($r->{headers}{'cache-control'}, 'no-store', '504 is no-store');

    my @st;
    for my $id (map { "item-$_" } 5 .. 14) {
        push @st, get("/v1/catalog/$id")->{status};
    }

    ok(!(grep { $_ != 503 && $_ != 504 } @st),
       'while stopped: 503 or 504 only') or diag("@st");

    $t->resume_redis;

    ok(wait_healthy(), 'Redis resumed: requests succeed again');

    # the late replies to timed-out commands must not reach later requests
    check_all_items('after the timeouts');
}


# ---- clients abort while their commands are pending -------------------------

{
    my @workers = $t->worker_pids;

    $t->pause_redis;

    my @conns;
    for my $i (1 .. 40) {
        my $c = $t->conn or next;
        $c->send_request(GET => "/slow/item-$i");
        push @conns, $c;
    }

    # one client that stays and must get its answer after the resume
    my $stay = $t->conn;
    $stay->send_request(GET => '/slow/item-41');

    sleep 0.3;

    for my $i (0 .. $#conns) {
        $i % 2 ? $conns[$i]->abort : $conns[$i]->close;
    }

    # a few more that abort at once, and some on keepalive with two requests
    for my $i (1 .. 10) {
        my $c = $t->conn or next;
        $c->send_request(GET => "/slow/item-$i");
        $c->send_request(GET => "/slow/item-" . ($i + 10));
        $c->abort;
    }

    sleep 0.3;
    $t->resume_redis;

    my $r = $stay->read_response;
    is($r->{status}, 200, 'the client that waited gets 200');
    is($r->{body}, $doc{'item-41'}, 'the client that waited gets its item');

    ok(wait_healthy(), 'nginx healthy after the aborted clients');
    check_all_items('after the aborted clients');

    is_deeply([$t->worker_pids], \@workers, 'no worker restarted');
}


# ---- Redis killed while commands are pending --------------------------------

{
    $t->pause_redis;

    my @conns;
    for my $i (1 .. 10) {
        my $c = $t->conn or next;
        $c->send_request(GET => "/slow/item-$i");
        push @conns, $c;
    }

    sleep 0.3;
    $t->kill_redis;

    my @st = map { $_->read_response } @conns;
    ok(!(grep { $_->{status} != 503 } @st),
       'pending commands when Redis dies: 503')
        or diag(join ' ', map { "$_->{status}/" . ($_->{error} // '') } @st);

    $t->start_redis;
    seed();
    ok(wait_healthy(), 'and back again after a restart');
    check_all_items('after a restart with pending commands');
}

my @bad = grep { /\[(?:alert|crit)\]/ } new_log_lines(0);
ok(!@bad, 'Redis failures never log alert or crit') or diag(join "\n", @bad);

$t->done;
