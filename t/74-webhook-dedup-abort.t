#!/usr/bin/perl
# commerce_webhook_dedup when the request and the delivery part ways: a
# sender that hangs up while its webhook waits for the broker, and Redis
# lost between the claim and the done mark.  A webhook that reaches Kafka
# must be remembered as done, so that the sender's retry is a duplicate and
# not a second message.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;

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
    commerce_redis_reconnect_min 10ms;
    commerce_redis_reconnect_max 200ms;
    commerce_redis_breaker_timeout 300ms;

    commerce_kafka_brokers $bs;
    commerce_kafka_property reconnect.backoff.max.ms 200;
    commerce_kafka_delivery_timeout 20s;
    commerce_kafka_breaker_threshold 0;   # deliveries wait (t/75: breaker)

    server {
        listen 127.0.0.1:%%PORT_HTTP%%;

        location = /wh {
            commerce_webhook shop;
            commerce_webhook_topic d.abort;
            commerce_webhook_delivery_id \$http_x_delivery;
            commerce_webhook_dedup on;
            commerce_webhook_dedup_ttl 1h;
            commerce_webhook_inflight_ttl 2s;
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
    my ($body, $id) = @_;
    return $t->http(POST => '/wh', 'Content-Type' => 'application/json',
                    'X-Delivery' => $id, -body => $body, -timeout => 40);
}

sub rget { $t->redis_cmd('GET', "wh:dedup:shop:$_[0]") }

sub in_kafka {
    my ($body) = @_;
    return grep { defined $_->{value} && $_->{value} eq $body }
           $broker->consume('d.abort');
}

ok(wait_for(sub { post(qq({"warmup":1}), "warmup-$tag")->{status} == 202 },
            100),
   'warm-up delivery accepted');

# ----------------------------- the sender hangs up while it is pending ---

{
    my $id = "abort-$tag";
    my $body = qq({"abort":1,"tag":"$tag"});

    $broker->control('down all');

    my $c = $t->conn(timeout => 40);
    $c->send_request(POST => '/wh', 'X-Delivery' => $id,
                     'Content-Type' => 'application/json', -body => $body);
    ok(wait_for(sub { (rget($id) // '') =~ /^inflight:/ }),
       'the pending delivery is marked in flight');

    # the provider's HTTP client times out and closes; the request stays
    # until its delivery report, so its outcome is recorded
    $c->abort;
    ok((rget($id) // '') =~ /^inflight:/,
       'the client is gone, the delivery still in flight');

    $broker->control('up all');

    my @m;
    wait_for(sub { @m = in_kafka($body) }, 400);
    is(scalar @m, 1, 'the abandoned webhook still reaches Kafka');

    # the in-flight mark (2s) must not simply expire: the message is in
    # Kafka, so the retry after the provider's back-off is a duplicate
    my $v;
    wait_for(sub { $v = rget($id); !defined $v || $v =~ /^done:/ }, 200);
    is($v, @m ? "done:$m[0]{partition}:$m[0]{offset}" : 'in Kafka',
       'its mark becomes done:<partition>:<offset> without the request');

    my $r = post($body, $id);
    is($r->{status}, 200, "the sender's retry: 200 duplicate")
        or diag($r->{body});
    is(scalar(in_kafka($body)), 1, 'published exactly once');
}

# --------------------------------- Redis lost between claim and done ---

{
    my $id = "redis-lost-$tag";
    my $body = qq({"redis_lost":1,"tag":"$tag"});

    $broker->control('down all');

    my $c = $t->conn(timeout => 40);
    $c->send_request(POST => '/wh', 'X-Delivery' => $id,
                     'Content-Type' => 'application/json', -body => $body);
    ok(wait_for(sub { (rget($id) // '') =~ /^inflight:/ }),
       'claimed in Redis');

    $t->stop_redis;
    $broker->control('up all');

    my $r = $c->read_response;
    is($r->{status}, 202, 'published while Redis is gone: still 202 '
                          . '(the message is in Kafka)');
    ok(scalar $t->log_grep(qr/\[warn\].*published but not marked done/),
       'the lost done mark is logged at warn');
    is(scalar(in_kafka($body)), 1, 'published once');
    $c->close;
}

$t->stop_nginx;
$broker->stop;

$t->done;
