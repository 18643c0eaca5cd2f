#!/usr/bin/perl

# The worker's read cache (commerce_redis_cache_size): repeated item and
# stock reads do not reach Redis, and every write to a key, by anyone, is
# seen by the reads after it (Redis client-side caching, broadcast mode).
# Nothing here waits for a fixed time: a new value is polled for, and once
# seen an older one must never come back.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(sleep);

use CommerceTest;

my $t = CommerceTest->new;
$t->start_redis;

$t->write_nginx_conf(<<'EOF');
commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;
commerce_redis_cache_size 16m;
commerce_redis_cache_valid 1h;
commerce_redis_timeout 300ms;

server {
    listen 127.0.0.1:%%PORT_HTTP%%;

    location ~ ^/v1/catalog/(?<item_id>[^/]+)$ {
        commerce_catalog_item $item_id;
    }

    location ~ ^/v1/stores/(?<store_id>[^/]+)/inventory/(?<sku>[^/]+)$ {
        commerce_inventory_item $store_id $sku;
    }

    location = /v1/catalog {
        commerce_catalog_list;
    }
}
EOF

$t->start_nginx;

# Calls of a Redis command since the last CONFIG RESETSTAT.
sub calls {
    my ($cmd) = @_;
    my $info = $t->redis_cmd('INFO', 'commandstats');
    return $info =~ /^cmdstat_\Q$cmd\E:calls=(\d+)/m ? $1 : 0;
}

# The tracking connection is subscribed once the log says so.
sub wait_tracking {
    my ($n) = @_;
    for (1 .. 400) {
        return 1 if $t->log_grep(qr/tracking \S+ for the read cache/) >= $n;
        sleep 0.025;
    }
    return 0;
}

# Polls a path until its body is $want (or 10 s: then it failed).
sub body_becomes {
    my ($path, $want) = @_;
    my $b = '';
    for (1 .. 1000) {
        my $r = $t->http_get($path);
        $b = $r->{status} == 200 ? $r->{body} : $r->{status};
        return 1 if $b eq $want;
        sleep 0.01;
    }
    diag("$path: '" . substr($b, 0, 60) . "', not '$want'");
    return 0;
}

ok(wait_tracking(1), 'the tracking connection subscribed');

# --- hits do not reach Redis ----------------------------------------------

$t->redis_cmd('SET', 'cat:item:a', '{"id":"a","v":1}');
$t->redis_cmd('HSET', 'inv:s1', 'k1', '{"on_hand":1}');
$t->redis_cmd('CONFIG', 'RESETSTAT');

my $first = $t->http_get('/v1/catalog/a');
is($first->{status}, 200, 'item read');
is($first->{body}, '{"id":"a","v":1}', 'item body');
my $etag = $first->{headers}{etag};

my $same = 1;
for (1 .. 20) {
    my $r = $t->http_get('/v1/catalog/a');
    $same &&= $r->{status} == 200 && $r->{body} eq $first->{body}
              && $r->{headers}{etag} eq $etag;
    $t->http_get('/v1/stores/s1/inventory/k1');
}
ok($same, 'cached reads: the same bytes and ETag');
is(calls('get'), 1, '21 item reads, 1 GET');
is(calls('hget'), 1, '20 stock reads, 1 HGET');

my $nm = $t->http_get('/v1/catalog/a', 'If-None-Match' => $etag);
is($nm->{status}, 304, 'a cached read honours If-None-Match');
my $head = $t->http(HEAD => '/v1/catalog/a');
is($head->{status}, 200, 'HEAD of a cached value');
is($head->{body}, '', 'HEAD has no body');

is($t->http_get('/v1/catalog/nope')->{status}, 404, 'missing item');
is($t->http_get('/v1/catalog/nope')->{status}, 404, 'missing item again');
is(calls('get'), 2, 'a 404 is cached too');

# pages are not cached
$t->redis_cmd('ZADD', 'cat:index', 0, 'a');
$t->http_get('/v1/catalog?limit=5') for 1 .. 3;
is(calls('zrangebylex'), 3, 'list pages always go to Redis');

# --- writes invalidate -----------------------------------------------------

$t->redis_cmd('SET', 'cat:item:a', '{"id":"a","v":2}');
ok(body_becomes('/v1/catalog/a', '{"id":"a","v":2}'), 'an update is seen');

$t->redis_cmd('SET', 'cat:item:nope', '{"id":"nope"}');
ok(body_becomes('/v1/catalog/nope', '{"id":"nope"}'),
   'a created item is seen after its cached 404');

$t->redis_cmd('HSET', 'inv:s1', 'k2', '{"on_hand":2}');
ok(body_becomes('/v1/stores/s1/inventory/k2', '{"on_hand":2}'),
   'another field of the hash');
is($t->http_get('/v1/stores/s1/inventory/k1')->{body}, '{"on_hand":1}',
   'a field keeps its value when another one of its hash changes');

$t->redis_cmd('HSET', 'inv:s1', 'k1', '{"on_hand":5}');
ok(body_becomes('/v1/stores/s1/inventory/k1', '{"on_hand":5}'),
   'a stock update is seen');

$t->redis_cmd('DEL', 'cat:item:a');
ok(body_becomes('/v1/catalog/a', '404'), 'a deleted item is 404');

$t->redis_cmd('SET', 'cat:item:a', '{"v":3}');
ok(body_becomes('/v1/catalog/a', '{"v":3}'), 'written again');
$t->redis_cmd('FLUSHALL');
ok(body_becomes('/v1/catalog/a', '404'), 'FLUSHALL drops everything');

# --- a write racing a miss -------------------------------------------------
# Redis frozen: nginx's GET for a key it does not hold and a client's SET
# of that key are both waiting; whatever order Redis runs them in, the
# newer value must be what the reads after the SET end up with, and stay.
# The old value is large: its reply takes many reads of 16 KiB, and the
# invalidation of the SET, on the other connection, comes in between.

my $old = '{"v":"' . ('o' x 400_000) . '"}';
my $stale = 0;
for my $i (1 .. 20) {
    my $key = "cat:item:race$i";
    $t->redis_cmd('SET', $key, $old);

    $t->pause_redis;
    my $get = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                    PeerPort => $t->port('HTTP'))
        or die "connect: $!";
    print {$get} "GET /v1/catalog/race$i HTTP/1.1\r\nHost: x\r\n"
        . "Connection: close\r\n\r\n";
    sleep 0.02;

    my $set = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                    PeerPort => $t->redis_port)
        or die "connect: $!";
    print {$set} "*3\r\n\$3\r\nSET\r\n\$" . length($key) . "\r\n$key\r\n"
        . "\$11\r\n{\"v\":\"new\"}\r\n";
    sleep 0.02;
    $t->resume_redis;

    my $ok = <$set>;
    local $/;
    my $first_reply = <$get>;
    $first_reply =~ /\r\n\r\n\{"v":"o/ or $first_reply =~ /"new"/
        or diag("the racing read got: " . substr($first_reply, 0, 80));

    body_becomes("/v1/catalog/race$i", '{"v":"new"}') or $stale++;
    for (1 .. 5) {
        $t->http_get("/v1/catalog/race$i")->{body} eq '{"v":"new"}'
            or $stale++;
    }
}
is($stale, 0, 'no older value kept after a racing write');

# --- tracking lost: nothing cached meanwhile ------------------------------

$t->redis_cmd('SET', 'cat:item:b', '{"v":1}');
$t->http_get('/v1/catalog/b') for 1 .. 2;

$t->redis_cmd('CLIENT', 'KILL', 'TYPE', 'pubsub');
my $off = 0;
for (1 .. 400) {
    $off = $t->log_grep(qr/read cache off until tracking is back/) and last;
    sleep 0.025;
}
ok($off, 'a lost tracking connection turns the cache off');
ok(wait_tracking(2), 'and it subscribes again');

$t->redis_cmd('SET', 'cat:item:b', '{"v":2}');
ok(body_becomes('/v1/catalog/b', '{"v":2}'), 'nothing stale after it');

$t->redis_cmd('CONFIG', 'RESETSTAT');
$t->http_get('/v1/catalog/b') for 1 .. 5;
is(calls('get'), 0, 'served from the cache again once tracking is back');

# --- many keys in a small cache --------------------------------------------
# A second nginx whose 512k cache starts with 512 buckets and doubles them
# past 1,024 keys: every value read back after the growth, invalidated
# ones anew, then evictions take keys out of the chains.

$t->write_nginx_conf(<<'EOF', name => 'small');
commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;
commerce_redis_cache_size 512k;
commerce_redis_cache_valid 1h;

server {
    listen 127.0.0.1:%%PORT_SMALL%%;

    location ~ ^/v1/catalog/(?<item_id>[^/]+)$ {
        commerce_catalog_item $item_id;
    }
}
EOF
$t->start_nginx(name => 'small', port => $t->port('SMALL'));

{
    my $n = 1500;
    my @ids = map { sprintf 'many-%05d', $_ } 1 .. 3 * $n;
    $t->redis_pipeline(map { ['SET', "cat:item:$_", qq({"id":"$_"})] } @ids);

    # a connection per 500 requests (keepalive_requests is 1,000)
    my ($c, $served);
    my $read_all = sub {
        my ($want, @which) = @_;
        my $bad = 0;
        for my $id (@which) {
            if (!$c || ++$served % 500 == 0) {
                $c->close if $c;
                $c = $t->conn(port => $t->port('SMALL'));
            }
            my $r = $c->request(GET => "/v1/catalog/$id");
            $bad++ unless $r->{status} == 200 && $r->{body} eq $want->($id);
        }
        return $bad;
    };
    my $plain = sub { qq({"id":"$_[0]"}) };
    my @first = @ids[0 .. $n - 1];

    ok(wait_tracking(2), 'the small cache is tracking');
    is($read_all->($plain, @first), 0, "$n keys read");
    $t->redis_cmd('CONFIG', 'RESETSTAT');
    is($read_all->($plain, @first), 0, '... and read again');
    is(calls('get'), 0, '... all from the cache, past its first growth');

    my @changed = grep { /[05]$/ } @first;
    $t->redis_pipeline(map { ['SET', "cat:item:$_", qq({"id":"$_","v":2})] }
                       @changed);
    my %changed = map { $_ => 1 } @changed;
    my $now = sub {
        $changed{$_[0]} ? qq({"id":"$_[0]","v":2}) : $plain->($_[0])
    };
    ok(body_becomes("/v1/catalog/$changed[-1]", $now->($changed[-1])),
       'invalidations arrived');
    $t->redis_cmd('CONFIG', 'RESETSTAT');
    is($read_all->($now, @first), 0,
       scalar(@changed) . ' invalidated keys read anew, the others kept');
    is(calls('get'), scalar @changed, '... one GET per invalidated key');

    is($read_all->($plain, @ids[$n .. $#ids]), 0,
       2 * $n . ' more keys: the oldest evicted');
    $t->redis_cmd('CONFIG', 'RESETSTAT');
    is($read_all->($now, @first), 0,
       'the first keys read back after their eviction');
    ok(calls('get') > 0, '... from Redis');
    $c->close;
}

# --- Redis not answering: what was cached goes -----------------------------
# (invalidations may be lost with the replies)

$t->redis_cmd('SET', 'cat:item:c', '{"v":1}');
ok(body_becomes('/v1/catalog/c', '{"v":1}'), 'cached before the freeze');
my $offs = () = $t->log_grep(qr/read cache off until tracking is back/);
$t->pause_redis;
is($t->http_get('/v1/catalog/not-cached')->{status}, 504,
   'a miss times out while Redis is frozen');
$t->resume_redis;
my $now = () = $t->log_grep(qr/read cache off until tracking is back/);
is($now, $offs + 1, 'the timeout turned the cache off');
ok(wait_tracking(3), 'tracking again after the freeze');
$t->redis_cmd('CONFIG', 'RESETSTAT');
$t->http_get('/v1/catalog/c') for 1 .. 3;
is(calls('get'), 1, 'the value cached before the freeze was dropped');

# --- Redis restarted ------------------------------------------------------

$t->restart_redis;
ok(wait_tracking(4), 'tracking again after a restart of Redis');
$t->redis_cmd('SET', 'cat:item:b', '{"v":"after"}');
ok(body_becomes('/v1/catalog/b', '{"v":"after"}'),
   'values of the restarted Redis');

$t->done;
