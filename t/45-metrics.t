#!/usr/bin/perl
# commerce_metrics: a Prometheus exposition of every worker's counters from
# shared memory, valid for promtool, that counts what requests do and keeps
# counting across a reload.  commerce_health live|ready: liveness, and
# readiness that follows Redis and Kafka (503 while one is down).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(hmac_sha256_hex);
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);

use CommerceBroker;
use CommerceTest;

CommerceBroker->skip_unless_available;
plan skip_all => 'promtool not installed (Debian package prometheus)'
    unless system('sh', '-c', 'command -v promtool >/dev/null') == 0;

my $t = CommerceTest->new;
my $json = JSON::PP->new->canonical;
my $secret = 'metrics-secret-' . int rand 1e9;

# ---------------------------------------------------- nginx -t errors ---

sub conf_error {
    my ($name, $http) = @_;
    $t->write_nginx_conf($http, name => $name);
    my ($ok, $out) = $t->nginx_test_ok($name);
    return $ok ? '' : $out;
}

like(conf_error('bad_mode', <<'EOF'),
    server {
        listen 127.0.0.1:%%PORT_HTTP%%;
        location = /health { commerce_health sometimes; }
    }
EOF
     qr/invalid value "sometimes"/, 'commerce_health takes live|ready');

like(conf_error('metrics_arg', <<'EOF'),
    server {
        listen 127.0.0.1:%%PORT_HTTP%%;
        location = /metrics { commerce_metrics on; }
    }
EOF
     qr/invalid number of arguments in "commerce_metrics"/,
     'commerce_metrics takes no argument');

like(conf_error('two_handlers', <<'EOF'),
    server {
        listen 127.0.0.1:%%PORT_HTTP%%;
        location = /metrics { commerce_metrics; commerce_health live; }
    }
EOF
     qr/"commerce_health" directive is duplicate/,
     'one handler per location');

# ------------------------------------------------------------- server ---

my $broker = CommerceBroker->new($t);
my $bs = $broker->bootstrap;

$t->start_redis;
$t->redis_cmd('SET', 'cat:item:m-1', '{"id":"m-1"}');
$t->redis_cmd('ZADD', 'cat:index', 0, 'm-1');

$t->write_nginx_conf(<<"EOF", workers => 2);
    commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;
    commerce_redis_reconnect_max 200ms;
    commerce_redis_breaker_timeout 500ms;
    commerce_kafka_brokers $bs;
    commerce_kafka_property reconnect.backoff.max.ms 200;
    commerce_kafka_delivery_timeout 2s;

    commerce_limit_zone \$binary_remote_addr zone=wh_hmac:1m rate=1r/m;

    server {
        listen 127.0.0.1:%%PORT_HTTP%%;

        location ~ ^/v1/catalog/(?<item_id>[^/]+)\$ {
            commerce_catalog_item \$item_id;
        }

        location = /v1/catalog {
            commerce_catalog_list;
        }

        location = /v1/webhooks/hmac {
            commerce_webhook hmac;
            commerce_webhook_delivery_id \$http_x_delivery_id;
            commerce_webhook_signature hmac;
            commerce_webhook_hmac_header X-Signature;
            commerce_webhook_hmac_prefix sha256=;
            commerce_webhook_secret $secret;
            commerce_webhook_dedup on;
        }

        location = /v1/webhooks/limited {
            commerce_webhook limited;
            commerce_webhook_signature hmac;
            commerce_webhook_hmac_header X-Signature;
            commerce_webhook_hmac_prefix sha256=;
            commerce_webhook_secret $secret;
            commerce_limit zone=wh_hmac;
        }

        location = /metrics { commerce_metrics; }
        location = /livez { commerce_health live; }
        location = /readyz { commerce_health ready; }
    }
EOF

$t->start_nginx;


# The exposition as { 'name{labels}' => value }, and its text.
sub scrape {
    my $r = $t->http(GET => '/metrics');
    my %m;

    for (split /\n/, $r->{body} // '') {
        next if /^#/;
        $m{$1} = $2 if /^(\S+) (\S+)$/;
    }

    return (\%m, $r);
}

sub metric {
    my ($name) = @_;
    my ($m) = scrape();
    return $m->{$name} // 0;
}

sub promtool_ok {
    my ($text, $name) = @_;

    my $file = $t->dir . '/scrape.txt';
    open my $fh, '>', $file or die;
    print {$fh} $text;
    close $fh;

    my $out = `promtool check metrics < $file 2>&1`;
    is($?, 0, "promtool check metrics: $name") or diag($out);
}

sub wait_until {
    my ($code, $secs) = @_;
    my $end = time + $secs;

    while (time < $end) {
        return 1 if $code->();
        sleep 0.1;
    }

    return $code->();
}

sub webhook {
    my ($path, $id, $body, $sig) = @_;
    $sig //= 'sha256=' . hmac_sha256_hex($body, $secret);
    return $t->http(POST => $path, 'Content-Type' => 'application/json',
                    'X-Delivery-Id' => $id, 'X-Signature' => $sig,
                    -body => $body);
}

my $port = $t->redis_port;
my $server = "127.0.0.1:$port";

{
    my ($m, $r) = scrape();
    is($r->{status}, 200, 'GET /metrics');
    like($r->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4},
         'the Prometheus text format');
    promtool_ok($r->{body}, 'at start');

    like($r->{body}, qr/^# TYPE commerce_http_requests_total counter$/m,
         'requests counter declared');
    like($r->{body},
         qr/^# TYPE commerce_redis_command_duration_seconds histogram$/m,
         'Redis latency histogram declared');

    ok(wait_until(sub {
           defined((scrape())[0]->{"commerce_breaker_state{kind=\"redis\","
                                 . "server=\"$server\"}"}) }, 5),
       'the Redis server has a breaker gauge');

    is((scrape())[0]->{"commerce_breaker_state{kind=\"kafka\","
                       . "server=\"$bs\"}"}, 0,
       'the producer\'s breaker: closed');

    is($t->http(POST => '/metrics', -body => 'x')->{status}, 405,
       'POST /metrics: 405');
    is($t->http(HEAD => '/metrics')->{status}, 200, 'HEAD /metrics');
}

# ------------------------------------------------ counting requests ---

{
    my $ok = 'commerce_http_requests_total{api="catalog",status="200"}';
    my $nf = 'commerce_http_requests_total{api="catalog",status="404"}';
    my $ix = 'commerce_http_requests_total{api="catalog_index",status="200"}';
    my $hist = 'commerce_redis_command_duration_seconds_count';

    my ($m0) = scrape();

    # several connections: both workers answer some
    $t->http(GET => '/v1/catalog/m-1') for 1 .. 6;
    $t->http(GET => '/v1/catalog/nope') for 1 .. 2;
    $t->http(GET => '/v1/catalog?limit=5');

    my ($m1) = scrape();

    is(($m1->{$ok} // 0) - ($m0->{$ok} // 0), 6, 'catalog 200s counted');
    is(($m1->{$nf} // 0) - ($m0->{$nf} // 0), 2, 'catalog 404s counted');
    is(($m1->{$ix} // 0) - ($m0->{$ix} // 0), 1, 'catalog index counted');
    cmp_ok($m1->{$hist} - $m0->{$hist}, '>=', 9,
           'a Redis latency observation per command');
    is($m1->{'commerce_redis_command_duration_seconds_bucket{le="+Inf"}'},
       $m1->{$hist}, '+Inf bucket equals the count');
    cmp_ok($m1->{'commerce_http_requests_total{api="metrics",status="200"}'}
           // 0, '>=', 1, 'the scrapes count too');
}

# --------------------------------------------------------- webhooks ---

{
    my $new = 'commerce_webhook_dedup_total{outcome="new"}';
    my $dup = 'commerce_webhook_dedup_total{outcome="duplicate"}';
    my $okd = 'commerce_kafka_deliveries_total{result="ok"}';
    my $lat = 'commerce_kafka_delivery_duration_seconds_count';
    my $mis = 'commerce_webhook_signature_failures_total{source="hmac",'
              . 'reason="signature_mismatch"}';
    my $miss = 'commerce_webhook_signature_failures_total{source="hmac",'
               . 'reason="missing_signature"}';

    my ($m0) = scrape();
    my $id = 'm-' . int rand 1e9;
    my $body = '{"type":"x","n":1}';

    is(webhook('/v1/webhooks/hmac', $id, $body)->{status}, 202,
       'a signed webhook: 202');
    # the 202 does not wait for the done mark: a redelivery right behind
    # it may still find the in-flight one (409), as a provider's retry would
    my $st;
    for (1 .. 100) {
        $st = webhook('/v1/webhooks/hmac', $id, $body)->{status};
        last if $st != 409;
        sleep 0.01;
    }
    is($st, 200, 'its redelivery: 200 duplicate');
    my $r = webhook('/v1/webhooks/hmac', "$id-b", $body, 'sha256=' . '0' x 64);
    is($r->{status}, 401, 'a bad signature: 401') or diag($r->{body});
    $r = $t->http(POST => '/v1/webhooks/hmac', 'X-Delivery-Id' => "$id-c",
                  -body => $body);
    is($r->{status}, 401, 'no signature: 401') or diag($r->{body});

    my ($m1) = scrape();

    is($m1->{$new} - $m0->{$new}, 1, 'dedup: new');
    is($m1->{$dup} - $m0->{$dup}, 1, 'dedup: duplicate');
    is($m1->{$okd} - $m0->{$okd}, 1, 'Kafka: one delivery ok');
    is($m1->{$lat} - $m0->{$lat}, 1, 'Kafka: its latency observed');
    is($m1->{commerce_kafka_in_flight}, 0, 'Kafka: nothing in flight');
    is(($m1->{$mis} // 0) - ($m0->{$mis} // 0), 1,
       'signature failure by source and reason');
    is(($m1->{$miss} // 0) - ($m0->{$miss} // 0), 1,
       'missing signature counted');
    is(($m1->{'commerce_http_requests_total{api="webhook",status="202"}'}
        // 0)
       - ($m0->{'commerce_http_requests_total{api="webhook",status="202"}'}
          // 0), 1, 'webhook 202 counted');

    my $allowed = 'commerce_ratelimit_decisions_total{zone="wh_hmac",'
                  . 'decision="allowed"}';
    my $limited = 'commerce_ratelimit_decisions_total{zone="wh_hmac",'
                  . 'decision="limited"}';

    my @st = map { webhook('/v1/webhooks/limited', "l-$_-$id",
                           $body)->{status} } 1 .. 3;
    is("@st", '202 429 429', 'rate limit 1r/m: then 429');

    my ($m2, $r2) = scrape();
    is($m2->{$allowed} - ($m1->{$allowed} // 0), 1, 'limit: allowed');
    is($m2->{$limited} - ($m1->{$limited} // 0), 2, 'limit: limited');
    promtool_ok($r2->{body}, 'with every family');
}

# ----------------------------------------------------------- health ---

{
    my $r = $t->http(GET => '/livez');
    is($r->{status}, 200, 'live: 200');
    is($r->{body}, qq({"status":"alive"}\n), 'live: body');

    my $ready;
    ok(wait_until(sub { ($ready = $t->http(GET => '/readyz'))->{status}
                        == 200 }, 10), 'ready: 200 once Kafka is up')
        or diag($ready->{body});
    is($ready->{body},
       qq({"status":"ready","checks":{"redis":{"status":"up"},)
       . qq("kafka":{"status":"up"}}}\n), 'ready: the checks');
    is($ready->{headers}{'cache-control'}, 'no-store', 'ready: no-store');
}

{
    my $gauge = "commerce_breaker_state{kind=\"redis\",server=\"$server\"}";
    my $conn = 'commerce_redis_errors_total{reason="connect"}';
    my $c0 = metric($conn);

    $t->kill_redis;

    my $r;
    ok(wait_until(sub { ($r = $t->http(GET => '/readyz'))->{status}
                        == 503 }, 10), 'Redis killed: ready 503');
    like($r->{body}, qr/"status":"not_ready".*"redis":\{"status":"down",/,
         'ready: Redis down');
    ok(wait_until(sub { metric($gauge) > 0 }, 10),
       'the Redis breaker is not closed');
    cmp_ok(metric($conn), '>', $c0, 'connect errors counted');
    is($t->http(GET => '/livez')->{status}, 200, 'still live');

    $t->start_redis;
    $t->redis_cmd('SET', 'cat:item:m-1', '{"id":"m-1"}');

    ok(wait_until(sub { ($r = $t->http(GET => '/readyz'))->{status}
                        == 200 }, 15), 'Redis back: ready 200')
        or diag($r->{body});
    ok(wait_until(sub { $t->http(GET => '/v1/catalog?limit=1');
                        metric($gauge) == 0 }, 10),
       'the Redis breaker closes again');
}

{
    my $r;

    $broker->control('down all');
    ok(wait_until(sub { ($r = $t->http(GET => '/readyz'))->{status}
                        == 503 }, 20), 'brokers down: ready 503');
    like($r->{body}, qr/"kafka":\{"status":"down","reason":"no_broker_up"\}/,
         'ready: Kafka down');

    $broker->control('up all');
    ok(wait_until(sub { ($r = $t->http(GET => '/readyz'))->{status}
                        == 200 }, 30), 'brokers up: ready 200')
        or diag($r->{body});
}

# ----------------------------------------------------------- reload ---

{
    my $ok = 'commerce_http_requests_total{api="catalog",status="200"}';

    $t->http(GET => '/v1/catalog/m-1');
    my $before = metric($ok);
    cmp_ok($before, '>=', 7, 'counted before the reload');

    ok($t->reload_nginx, 'reload');

    is(metric($ok), $before, 'the counter survives the reload');
    $t->http(GET => '/v1/catalog/m-1') for 1 .. 3;
    is(metric($ok), $before + 3, 'and keeps counting');

    my ($m, $r) = scrape();
    ok(defined $m->{"commerce_breaker_state{kind=\"redis\","
                    . "server=\"$server\"}"},
       'the new workers report their breakers');
    promtool_ok($r->{body}, 'after the reload');
}

$t->done;
