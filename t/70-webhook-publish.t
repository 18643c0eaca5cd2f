#!/usr/bin/perl
# commerce_webhook: a webhook is acknowledged (202) only once the broker
# holds it; the Kafka message carries the body byte for byte, the key and
# the ingress headers.  commerce_kafka_* configuration errors fail nginx -t.
#
# Broker: build/bin/commerce-devbroker (librdkafka mock cluster) through
# CommerceBroker, read back with kcat.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);

use CommerceBroker;
use CommerceTest;

CommerceBroker->skip_unless_available;

my $t = CommerceTest->new;
my $broker = CommerceBroker->new($t);
my $bs = $broker->bootstrap;

# ---------------------------------------------------- nginx -t errors ---

sub conf_error {
    my ($name, $http) = @_;
    $t->write_nginx_conf($http, name => $name);
    my ($ok, $out) = $t->nginx_test_ok($name);
    return $ok ? '' : $out;
}

like(conf_error('bad_prop', <<"EOF"),
    commerce_kafka_brokers $bs;
    commerce_kafka_property no.such.property 1;
EOF
     qr/invalid Kafka property "no\.such\.property": No such configuration/,
     'unknown librdkafka property fails nginx -t with librdkafka\'s message');

like(conf_error('bad_value', <<"EOF"),
    commerce_kafka_brokers $bs;
    commerce_kafka_property compression.type bogus;
EOF
     qr/invalid Kafka property "compression\.type": Invalid value/,
     'invalid property value fails nginx -t');

like(conf_error('reserved', <<"EOF"),
    commerce_kafka_brokers $bs;
    commerce_kafka_property acks 1;
EOF
     qr/"acks" is set by the commerce module/,
     'acks cannot be overridden');

like(conf_error('no_brokers', <<'EOF'),
    server {
        listen 127.0.0.1:%%PORT_HTTP%%;
        location /wh { commerce_webhook shop; }
    }
EOF
     qr/"commerce_kafka_brokers" is not set/,
     'a webhook location without brokers fails nginx -t');

like(conf_error('bad_threads', <<"EOF"),
    commerce_kafka_brokers $bs;
    commerce_kafka_thread_scheduling idle;
EOF
     qr/invalid value "idle" in \S+bad_threads\S*:\d+/,
     'an unknown thread scheduling policy fails nginx -t');

like(conf_error('bad_brokers', <<'EOF'),
    commerce_kafka_brokers 127.0.0.1:9092,127.0.0.1;
EOF
     qr/invalid broker "127\.0\.0\.1"/, 'a broker without port fails');

# ------------------------------------------------------------- server ---

$t->write_nginx_conf(<<"EOF");
    commerce_kafka_brokers $bs;
    commerce_kafka_property compression.type lz4;
    commerce_kafka_property reconnect.backoff.max.ms 200;
    commerce_kafka_delivery_timeout 1s;
    commerce_kafka_breaker_threshold 0;   # deliveries wait (t/75: breaker)

    server {
        listen 127.0.0.1:%%PORT_HTTP%%;

        location = /webhooks/shopify {
            commerce_webhook shopify;
            commerce_webhook_key \$http_x_shopify_shop_domain;
            commerce_webhook_delivery_id \$http_x_shopify_webhook_id;
        }

        location ~ ^/hooks/(?<src>[a-z]+)\$ {
            commerce_webhook \$src;
            commerce_webhook_topic commerce.events;
            commerce_webhook_delivery_id \$http_webhook_id;
            commerce_webhook_max_body 1k;
        }

        location = /spill {
            client_body_in_file_only clean;
            commerce_webhook spill;
        }

        location = /big {
            commerce_webhook big;
        }
    }
EOF

$t->start_nginx;

my $t0 = int(time * 1000);

# A JSON webhook with key and delivery id.
my $body = qq({"id":820982911946154508,"note":"caf\xc3\xa9 \\"x\\"\\n"});
my $r = $t->http(POST => '/webhooks/shopify',
                 'X-Shopify-Shop-Domain' => 'shop-1.myshopify.com',
                 'X-Shopify-Webhook-Id' => 'b54557e4-bdd9-4b37-8a5f',
                 'Content-Type' => 'application/json',
                 -body => $body);

is($r->{status}, 202, 'webhook accepted');
is($r->{headers}{'content-type'}, 'application/json', 'JSON answer');
my $ack = decode($r->{body});
is($ack->{status}, 'accepted', 'status accepted');
is($ack->{topic}, 'commerce.inbound', 'default topic');
is($ack->{delivery_id}, 'b54557e4-bdd9-4b37-8a5f', 'delivery id echoed');
like($ack->{partition}, qr/^\d+$/, 'partition given');
like($ack->{offset}, qr/^\d+$/, 'offset given');

my $t1 = int(time * 1000) + 1;

# librdkafka's threads in the worker are SCHED_BATCH (the default of
# commerce_kafka_thread_scheduling), the worker's own thread is not.
my %pol = thread_policies();
ok(grep({ /^rdk:broker/ } keys %pol), 'the worker runs librdkafka broker '
   . 'threads: ' . join(',', sort keys %pol));
is_deeply([sort grep { $pol{$_} ne 'batch' } grep { /^rdk:/ } keys %pol],
          [], 'every librdkafka thread is SCHED_BATCH');
is($pol{nginx}, 'other', 'the nginx thread keeps SCHED_OTHER');

# The 202 came after the broker had it: it is at the partition and offset
# the answer names.
my $m = find_at('commerce.inbound', $ack->{partition}, $ack->{offset});
ok($m, 'message is in Kafka at the acknowledged offset');
is($m->{value}, $body, 'value is the body byte for byte');
is($m->{key}, 'shop-1.myshopify.com', 'key from commerce_webhook_key');
is($m->{h}{source}, 'shopify', 'source header');
is($m->{h}{delivery_id}, 'b54557e4-bdd9-4b37-8a5f', 'delivery_id header');
is($m->{h}{signature_scheme}, '', 'signature_scheme header (empty)');
is($m->{h}{content_type}, 'application/json', 'content_type header');
ok($m->{h}{received_at} =~ /^\d+$/ && $m->{h}{received_at} >= $t0 - 1000
   && $m->{h}{received_at} <= $t1, 'received_at is the receipt time in ms');
like($m->{h}{traceparent}, qr/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/,
     'a traceparent is generated');
unlike($m->{h}{traceparent}, qr/^00-0{32}-/, 'generated trace id not zero');

# W3C traceparent: a valid one is propagated, an invalid one replaced.
my $tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
$r = $t->http(POST => '/webhooks/shopify', traceparent => $tp,
              -body => 'trace-1');
is($r->{status}, 202, 'webhook with traceparent accepted');
$ack = decode($r->{body});
$m = find_at('commerce.inbound', $ack->{partition}, $ack->{offset});
is($m->{h}{traceparent}, $tp, 'valid traceparent propagated as is');
ok(!defined $m->{key}, 'empty key: message without key');
is($m->{h}{delivery_id}, '', 'no delivery id: empty header');

my $bad_tp = '00-00000000000000000000000000000000-00f067aa0ba902b7-01';
$r = $t->http(POST => '/webhooks/shopify', traceparent => $bad_tp,
              -body => 'trace-2');
$ack = decode($r->{body});
$m = find_at('commerce.inbound', $ack->{partition}, $ack->{offset});
like($m->{h}{traceparent}, qr/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/,
     'invalid traceparent replaced by a new one');
isnt($m->{h}{traceparent}, $bad_tp, 'the zero trace id is not propagated');

$r = $t->http(POST => '/webhooks/shopify',
              traceparent => 'ff' . substr($tp, 2), -body => 'trace-3');
$ack = decode($r->{body});
$m = find_at('commerce.inbound', $ack->{partition}, $ack->{offset});
isnt($m->{h}{traceparent}, 'ff' . substr($tp, 2), 'version ff rejected');

# Every byte value, and a body above the default client_body_buffer_size.
my $bin = join('', map { chr } 0 .. 255) x 3;
$r = $t->http(POST => '/webhooks/shopify',
              'Content-Type' => 'application/octet-stream', -body => $bin);
$ack = decode($r->{body});
$m = find_at('commerce.inbound', $ack->{partition}, $ack->{offset});
ok($m && $m->{value} eq $bin, 'binary body published byte for byte');
is($m->{h}{content_type}, 'application/octet-stream', 'its content type');

my $big = join '', map { sprintf "%07d,", $_ } 1 .. 30000;   # 240 KB
$r = $t->http(POST => '/webhooks/shopify', -body => $big);
is($r->{status}, 202, '240 KB body accepted');
$ack = decode($r->{body});
$m = find_at('commerce.inbound', $ack->{partition}, $ack->{offset});
ok($m && $m->{value} eq $big, '240 KB body published byte for byte');

# A body read into a temp file.
$r = $t->http(POST => '/spill', -body => $big);
is($r->{status}, 202, 'body from a temp file accepted');
$ack = decode($r->{body});
$m = find_at('commerce.inbound', $ack->{partition}, $ack->{offset});
ok($m && $m->{value} eq $big, 'temp file body published byte for byte');
is($m->{h}{source}, 'spill', 'its source');

# Source from a variable, another topic, the delivery id from webhook-id.
$r = $t->http(POST => '/hooks/stripe', 'webhook-id' => 'msg_2Lh9',
              -body => '{"type":"charge.succeeded"}');
is($r->{status}, 202, 'variable source accepted');
$ack = decode($r->{body});
is($ack->{topic}, 'commerce.events', 'commerce_webhook_topic');
$m = find_at('commerce.events', $ack->{partition}, $ack->{offset});
is($m->{h}{source}, 'stripe', 'source from $src');
is($m->{h}{delivery_id}, 'msg_2Lh9', 'delivery id from $http_webhook_id');
is($m->{value}, '{"type":"charge.succeeded"}', 'its value');

# ---------------------------------------------------- refused requests ---

$r = $t->http(GET => '/webhooks/shopify');
is($r->{status}, 405, 'GET: 405');
is($r->{headers}{allow}, 'POST', 'Allow: POST');
is(decode($r->{body})->{error}, 'method_not_allowed', '405 JSON error');

$r = $t->http(PUT => '/webhooks/shopify', -body => 'x');
is($r->{status}, 405, 'PUT: 405');

$r = $t->http(POST => '/hooks/github', -body => 'too-large-' . ('x' x 1024));
is($r->{status}, 413, 'body above commerce_webhook_max_body: 413');
is($r->{headers}{'content-type'}, 'application/json', '413 is JSON');
is(decode($r->{body})->{error}, 'body_too_large', '413 error code');

$r = $t->http(POST => '/hooks/github', -body => 'x' x 1024);
is($r->{status}, 202, 'body at commerce_webhook_max_body: 202');

my ($raw) = $t->http_raw("POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\n"
                         . "Connection: close\r\n"
                         . "Transfer-Encoding: chunked\r\n\r\n"
                         . "5\r\nchunk\r\n0\r\n\r\n");
like($raw, qr{^HTTP/1\.1 411 .*"error":"length_required"}s,
     'chunked body without Content-Length: 411');

$r = $t->http(POST => '/webhooks/shopify', -body => '');
is($r->{status}, 400, 'empty body: 400');
is(decode($r->{body})->{error}, 'empty_body', 'empty_body error');

# ------------------------------------------- Kafka's message size limit ---

# librdkafka's message.max.bytes (1,000,000 by default) counts the record
# overhead (36 bytes at most), the key and the headers: a body within the
# webhook limit (1m) may not fit in a message.  Above what fits: a JSON
# 413, permanent, not a 503 the provider would retry forever.
my $fit = 1_000_000 - 36 - headers_size(source => 'big', delivery_id => '',
                                        signature_scheme => '',
                                        received_at => '1' x 13,
                                        content_type => 'text/plain',
                                        traceparent => 'x' x 55);

my $at_limit = 'f' x $fit;
$r = $t->http(POST => '/big', 'Content-Type' => 'text/plain',
              -body => $at_limit, -timeout => 30);
is($r->{status}, 202, "a body that just fits a Kafka message ($fit): 202");
$ack = decode($r->{body});
$m = find_at('commerce.inbound', $ack->{partition}, $ack->{offset});
ok($m && length($m->{value}) == $fit && $m->{value} eq $at_limit,
   '... published byte for byte');

$r = $t->http(POST => '/big', 'Content-Type' => 'text/plain',
              -body => $at_limit . 'f', -timeout => 30);
is($r->{status}, 413, 'one byte more: 413, not 503');
is(decode($r->{body})->{error}, 'body_too_large', '... body_too_large');
ok(!$r->{headers}{'retry-after'}, '... without Retry-After (permanent)');

$r = $t->http(POST => '/big', -body => 'g' x 1_000_000, -timeout => 30);
is($r->{status}, 413, 'a body of message.max.bytes: 413');

# Above what any message can carry, the Content-Length is enough: the
# answer comes without the body being sent.
my ($early) = $t->http_raw("POST /big HTTP/1.1\r\nHost: x\r\n"
                           . "Connection: close\r\n"
                           . "Content-Length: 999965\r\n\r\n",
                           timeout => 10);
like($early, qr{^HTTP/1\.1 413 .*"error":"body_too_large"}s,
     'Content-Length above message.max.bytes: 413 before the body is read');

# A size the broker refuses (its own limit: a devbroker fault here) comes
# in the delivery report: the same permanent 413.
$broker->control('produce-error 10');
$r = $t->http(POST => '/big', -body => 'refused by the broker', -timeout => 30);
is($r->{status}, 413, 'the broker refuses the size: 413, not 503');
is(decode($r->{body})->{error}, 'body_too_large', '... body_too_large');
ok(!$r->{headers}{'retry-after'}, '... without Retry-After');

# --------------------------------------------------------- broker down ---

$broker->control('down all');

my $marker = 'down-' . $$ . '-' . int(rand(1e9));
$r = $t->http(POST => '/webhooks/shopify', -body => $marker, -timeout => 30);
is($r->{status}, 503, 'all brokers down: 503');
ok($r->{headers}{'retry-after'} && $r->{headers}{'retry-after'} > 0,
   '503 has Retry-After');
is(decode($r->{body})->{error}, 'broker_unavailable', '503 error code');

$broker->control('up all');

# The provider retries until accepted; the broker needs a moment to be
# reachable again.
my $status = 0;
for (1 .. 40) {
    $r = $t->http(POST => '/webhooks/shopify', -body => $marker,
                  -timeout => 30);
    $status = $r->{status};
    last if $status == 202;
    sleep 0.25;
}
is($status, 202, 'broker back: the retry is accepted');
is(scalar(grep { $_->{value} eq $marker }
          $broker->consume('commerce.inbound')), 1,
   'the webhook answered 503 was not published, the retry once');

# ------------------------------------------- client abort while pending ---

$broker->control('down all');

my $c = $t->conn;
my $abort_body = 'abort-' . $$;
$c->send_request(POST => '/webhooks/shopify', -body => $abort_body);
sleep 0.3;
$c->abort;

# the request outlives its client until the delivery report, so that the
# outcome is recorded (deduplication depends on it: t/74)
for (1 .. 100) {
    last if $t->log_grep(qr/delivery to \S+ failed: /);
    sleep 0.1;
}
ok(scalar $t->log_grep(qr/delivery to \S+ failed: /),
   'the report of an aborted request is still handled');

$broker->control('up all');

$status = 0;
for (1 .. 40) {
    $r = $t->http(POST => '/webhooks/shopify', -body => 'after-abort');
    $status = $r->{status};
    last if $status == 202;
    sleep 0.25;
}
is($status, 202, 'the worker serves on after the abort');

# ----------------------------- a smaller message.max.bytes, at nginx -t ---

$t->write_nginx_conf(<<"EOF", name => 'small');
    commerce_kafka_brokers $bs;
    commerce_kafka_property message.max.bytes 2000;
    commerce_kafka_breaker_threshold 0;
    commerce_kafka_thread_scheduling normal;

    server {
        listen 127.0.0.1:%%PORT_HTTP3%%;
        location /wh {
            commerce_webhook small;
            commerce_webhook_max_body 4k;
        }
    }
EOF

my ($small_ok, $small_out) = $t->nginx_test_ok('small');
ok($small_ok, 'a body limit above message.max.bytes is not an error');
like($small_out, qr/\[warn\].*"commerce_webhook_max_body"\ 4096\ is\ above
                    \ what\ a\ Kafka\ message\ can\ carry\ \(1964\ bytes.*
                    \ in\ \S+small\S*:\d+/x,
     '... but a warning at nginx -t, with file:line');

$t->start_nginx(name => 'small', port => $t->port('HTTP3'));

$r = $t->http(POST => '/wh', -port => $t->port('HTTP3'),
              -body => 'h' x 1000);
is($r->{status}, 202, 'message.max.bytes 2000: a body of 1000 fits');

$r = $t->http(POST => '/wh', -port => $t->port('HTTP3'),
              -body => 'h' x 1900);
is($r->{status}, 413, '... one of 1900 with the headers does not: 413');
is(decode($r->{body})->{error}, 'body_too_large', '... body_too_large');

%pol = thread_policies('small');
ok(grep({ /^rdk:broker/ } keys %pol), 'its worker runs broker threads');
is_deeply([sort grep { $pol{$_} ne 'other' } grep { /^rdk:/ } keys %pol],
          [], 'commerce_kafka_thread_scheduling normal: SCHED_OTHER');

$t->stop_nginx(name => 'small');

# ----------------------------------------- brokers at a closed port ---

$t->write_nginx_conf(<<'EOF', name => 'closed');
    commerce_kafka_brokers 127.0.0.1:%%PORT_CLOSED%%;
    commerce_kafka_delivery_timeout 1s;

    server {
        listen 127.0.0.1:%%PORT_HTTP2%%;
        location /wh { commerce_webhook shop; }
    }
EOF

$t->start_nginx(name => 'closed', port => $t->port('HTTP2'));

$r = $t->http(POST => '/wh', -port => $t->port('HTTP2'), -body => 'closed',
              -timeout => 30);
is($r->{status}, 503, 'brokers at a closed port: 503');
ok($r->{headers}{'retry-after'}, 'with Retry-After');
is(decode($r->{body})->{error}, 'broker_unavailable', 'broker_unavailable');

$t->stop_nginx(name => 'closed');
$t->stop_nginx;
$broker->stop;

$t->done;


# ---------------------------------------------------------------- util ---

# The scheduling policy of each thread of the workers of an nginx, by the
# thread's name: "other", "batch", "idle" or the number (field 41 of
# /proc/PID/task/TID/stat).
sub thread_policies {
    my ($name) = @_;
    my %names = (0 => 'other', 3 => 'batch', 5 => 'idle');
    my %pol;

    for my $pid ($t->worker_pids($name)) {
        for my $task (glob "/proc/$pid/task/*") {
            my $comm = $t->slurp("$task/comm");
            my $stat = $t->slurp("$task/stat");
            next unless defined $comm && defined $stat;
            chomp $comm;
            next unless $stat =~ /\)\s+(.*)$/s;
            my $policy = (split ' ', $1)[38];
            $pol{$comm} = $names{$policy} // $policy;
        }
    }

    return %pol;
}

# What librdkafka counts of record headers: each name and value with their
# lengths as zigzag varints.
sub headers_size {
    my (%h) = @_;
    my $size = 0;
    for my $v (keys(%h), values(%h)) {
        my $z = 2 * length $v;
        my $n = 1;
        while ($z >= 0x80) { $z >>= 7; $n++ }
        $size += length($v) + $n;
    }
    return $size;
}

sub decode {
    my ($s) = @_;
    my $v = eval { JSON::PP->new->decode($s) };
    return $v // {};
}


# The message of a topic at a partition and offset, or undef.
sub find_at {
    my ($topic, $p, $o) = @_;
    return undef unless defined $p && defined $o;
    my ($m) = grep { $_->{partition} == $p && $_->{offset} == $o }
              $broker->consume($topic);
    return $m;
}
