#!/usr/bin/perl
# commerce-participant-sim: the saga's payment provider and carrier.
# Payment commands come back as Stripe events POSTed to nginx's webhook
# ingress (source payments, commerce_webhook_signature stripe, dedup on)
# and land, verified, on commerce.payments.inbound; shipping commands are
# answered on commerce.shipping.replies.  Success, decline (decline_code),
# transient errors, no answer, the same idempotency key twice (the same
# event again, deduplicated by nginx, and the repeat counted), nginx
# answering 503 for a while (retried, published once), a command that
# breaks the contract, and SIGTERM.
#
# Real nginx, redis-server, commerce-devbroker and the simulator; Kafka
# written and read with kcat.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use HTTP::Tiny;
use JSON::PP;
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep);

use CommerceBroker qw(wait_for);
use CommerceTest;

CommerceBroker->skip_unless_available;

my $build = $ENV{COMMERCE_BUILD} // "$CommerceTest::REPO/build";
my $sim_bin = "$build/bin/commerce-participant-sim";
plan skip_all => 'commerce-participant-sim not built' unless -x $sim_bin;

my $t = CommerceTest->new;
my $dir = $t->dir;
my $broker = CommerceBroker->new($t, consume_timeout => 60);
my $bs = $broker->bootstrap;
my $tag = sprintf '%08x', int rand 0xffffffff;
my $secret = "whsec_sim_$tag";
my $inbound = 'commerce.payments.inbound';
my $json = JSON::PP->new->canonical;

$t->start_redis;

$t->write_nginx_conf(<<"EOF");
    commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;
    commerce_kafka_brokers $bs;
    commerce_kafka_delivery_timeout 20s;
    commerce_webhook_signature stripe;
    commerce_webhook_secret $secret;
    commerce_webhook_topic $inbound;
    commerce_webhook_dedup on;

    server {
        listen 127.0.0.1:%%PORT_HTTP%%;

        location = /webhooks/payments {
            commerce_webhook payments;
        }

        # 503 until the file "open" exists
        location = /webhooks/flaky {
            access_log %%TESTDIR%%/flaky.log;
            if (!-f %%TESTDIR%%/open) {
                return 503;
            }
            commerce_webhook payments;
        }
    }
EOF
$t->start_nginx;
my $http_port = $t->port('HTTP');

# ------------------------------------------------------------ helpers ---

sub produce {
    my ($topic, $key, $body, %h) = @_;

    my @cmd = ('kcat', '-P', '-b', $bs, '-t', $topic, '-k', $key);
    push @cmd, '-H', "$_=$h{$_}" for sort keys %h;
    open my $fh, '|-', @cmd or die "kcat: $!";
    print {$fh} $body;
    close $fh or die "kcat failed: $?";
}

my $traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

# A participant command on its topic, keyed by the order id, with the
# headers the saga sets.
sub command {
    my ($topic, %c) = @_;

    $c{attempt} //= 1;
    produce($topic, $c{order_id}, $json->encode(\%c),
            command_type => $c{type}, idempotency_key => $c{idempotency_key},
            content_type => 'application/json', traceparent => $traceparent);
}

sub authorize {
    my ($topic, $order, $key) = @_;
    command($topic, type => 'payment.authorize', order_id => $order,
            amount => 2590, currency => 'EUR',
            payment_method => 'pm_card_visa', idempotency_key => $key);
}

sub ship {
    my ($topic, $order, $key) = @_;
    command($topic, type => 'shipment.create', order_id => $order,
            store_id => 'store-001', idempotency_key => $key,
            lines => [ { sku => 'SKU-1', quantity => 2 } ],
            shipping_address => { name => 'A. Shopper', city => 'Lyon',
                                  country => 'FR' });
}

# The events of an order on the payments inbound topic, decoded.
sub events_of {
    my ($order) = @_;
    my @m;
    for my $msg ($broker->consume($inbound)) {
        my $ev = eval { decode_json($msg->{value}) } or next;
        my $meta = $ev->{data}{object}{metadata} // {};
        push @m, { %$msg, ev => $ev }
            if ($meta->{order_id} // '') eq $order;
    }
    return @m;
}

sub replies_of {
    my ($topic, $order) = @_;
    return map { { %$_, r => decode_json($_->{value}) } }
           grep { defined $_->{key} && $_->{key} eq $order }
           $broker->consume($topic);
}

my %sims;
my $nsim = 0;

# Starts a simulator; returns its pid and metrics port.
sub start_sim {
    my (%o) = @_;

    my $n = ++$nsim;
    my $mport = $t->port("SIM$n");
    my $log = "$dir/sim$n.log";
    my @args = ($sim_bin, "--kafka.brokers=$bs",
                "--kafka.group_id=sim-$tag-$n",
                "--webhook_url=http://127.0.0.1:$http_port"
                . ($o{path} // '/webhooks/payments'),
                "--webhook_secret=$secret", "--metrics.port=$mport",
                '--webhook_retry_min=100ms', '--webhook_retry_max=300ms',
                @{ $o{args} // [] });

    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log;
        open STDERR, '>&', \*STDOUT;
        exec @args or POSIX::_exit(127);
    }
    $sims{$pid} = { log => $log, port => $mport };

    ok(wait_for(sub { -f $log && CommerceTest->slurp($log)
                      =~ /participant simulator running/ }, 400),
       "simulator $n runs");

    return $pid;
}

sub metric {
    my ($pid, $name, %labels) = @_;

    my $r = HTTP::Tiny->new(timeout => 5)
        ->get("http://127.0.0.1:$sims{$pid}{port}/metrics");
    return undef unless $r->{success};
    my $want = join ',', map { "$_=\"$labels{$_}\"" } sort keys %labels;
    for my $line (split /\n/, $r->{content}) {
        next unless $line =~ /^\Q$name\E(?:\{([^}]*)\})? (\S+)$/;
        my $got = join ',', sort split /,/, $1 // '';
        return $2 + 0 if $got eq $want;
    }
    return undef;
}

# SIGTERM, bounded wait; returns the exit status.
sub stop_sim {
    my ($pid) = @_;

    kill 'TERM', $pid;
    for (1 .. 300) {
        return $? >> 8 if waitpid($pid, WNOHANG) == $pid;
        sleep 0.05;
    }
    kill 'KILL', $pid;
    waitpid $pid, 0;
    return -1;
}

END { kill 'KILL', $_ for keys %sims }

# ----------------------------------------------------- the happy path ---

my $o1 = "ord-ok-$tag";
my $o2 = "ord-rep-$tag";

# the topics exist before the consumer subscribes
authorize('commerce.payments.commands', $o1, "k-auth-$o1");
ship('commerce.shipping.commands', $o1, "k-ship-$o1");

my $sim = start_sim();

my @ev;
ok(wait_for(sub { @ev = events_of($o1) }, 400),
   'payment.authorize: a webhook reaches commerce.payments.inbound');
is(scalar @ev, 1, 'one event for the authorization');
my $e = $ev[0]{ev};
is($e->{type}, 'payment_intent.amount_capturable_updated',
   'a manual-capture authorization answers amount_capturable_updated');
is($e->{object}, 'event', 'a Stripe event object');
like($e->{id}, qr/^evt_[0-9A-Za-z]{24}$/, 'an evt_ id');
is($e->{request}{idempotency_key}, "k-auth-$o1",
   'request.idempotency_key is the command\'s key');
my $pi = $e->{data}{object};
is($pi->{object}, 'payment_intent', 'data.object is the PaymentIntent');
like($pi->{id}, qr/^pi_[0-9A-Za-z]{24}$/, 'a pi_ id');
is($pi->{status}, 'requires_capture', 'status requires_capture');
is($pi->{amount}, 2590, 'amount in minor units');
is($pi->{amount_capturable}, 2590, 'the whole amount is capturable');
is($pi->{currency}, 'eur', 'currency in lowercase, as Stripe writes it');
is($pi->{capture_method}, 'manual', 'capture_method manual');
is_deeply($pi->{metadata}, { order_id => $o1,
                             idempotency_key => "k-auth-$o1",
                             operation => 'authorize' },
          'metadata: order id, idempotency key, operation');
is($ev[0]{h}{source}, 'payments', 'published by nginx for source payments');
is($ev[0]{h}{signature_scheme}, 'stripe', 'the Stripe signature verified');
is($ev[0]{h}{delivery_id}, $e->{id}, 'delivery id: the event id');
is($ev[0]{h}{traceparent}, $traceparent,
   'the command\'s traceparent carried into the inbound message');

my @rep;
ok(wait_for(sub { @rep = replies_of('commerce.shipping.replies', $o1) },
            400), 'shipment.create: a reply on commerce.shipping.replies');
is(scalar @rep, 1, 'one reply');
my $r = $rep[0]{r};
is($r->{type}, 'shipment.created', 'shipment.created');
is($r->{command}, 'shipment.create', 'names the command it answers');
is($r->{order_id}, $o1, 'the order id');
is($r->{idempotency_key}, "k-ship-$o1", 'the idempotency key');
is($r->{attempt}, 1, 'the attempt');
like($r->{shipment_id}, qr/^shp_[0-9A-Za-z]{24}$/, 'a shipment id');
is($rep[0]{h}{reply_type}, 'shipment.created', 'reply_type header');
is($rep[0]{h}{idempotency_key}, "k-ship-$o1", 'idempotency_key header');
is($rep[0]{h}{traceparent}, $traceparent, 'traceparent header');

# capture of the authorized intent
command('commerce.payments.commands', type => 'payment.capture',
        order_id => $o1, amount => 2590, currency => 'EUR',
        payment_intent => $pi->{id}, idempotency_key => "k-cap-$o1");
ok(wait_for(sub { (@ev = events_of($o1)) == 2 }, 400),
   'payment.capture: a second event');
my ($cap) = grep { $_->{ev}{type} ne $e->{type} } @ev;
is($cap->{ev}{type}, 'payment_intent.succeeded',
   'a capture answers payment_intent.succeeded');
is($cap->{ev}{data}{object}{id}, $pi->{id}, 'of the same PaymentIntent');
is($cap->{ev}{data}{object}{amount_received}, 2590, 'amount_received');
is($cap->{ev}{data}{object}{metadata}{operation}, 'capture',
   'metadata operation capture');

# the same idempotency key twice: the same event, once on the topic
authorize('commerce.payments.commands', $o2, "k-auth-$o2");
authorize('commerce.payments.commands', $o2, "k-auth-$o2");
ok(wait_for(sub { (metric($sim, 'participant_sim_webhooks_total',
                          result => 'duplicate') // 0) == 1 }, 400),
   'the repeat\'s webhook is answered duplicate by nginx');
@ev = events_of($o2);
is(scalar @ev, 1, 'one event on the topic for the key sent twice');
is(metric($sim, 'participant_sim_commands_total',
          type => 'payment.authorize'), 3, '3 authorizations received');
is(metric($sim, 'participant_sim_repeats_total',
          type => 'payment.authorize'), 1, '1 of them a repeat of a key');
is(metric($sim, 'participant_sim_outcomes_total',
          type => 'payment.authorize', outcome => 'succeeded'), 3,
   'the repeat has the same outcome: succeeded');
is(metric($sim, 'participant_sim_webhooks_total', result => 'delivered'), 3,
   'three webhooks published (two authorizations, one capture)');
is(metric($sim, 'participant_sim_commands_total', type => 'payment.capture'),
   1, 'one capture received');
is(metric($sim, 'participant_sim_doubles_total', type => 'payment.capture'),
   0, 'no order captured twice');

# a second capture of the order under another key: a double, counted
command('commerce.payments.commands', type => 'payment.capture',
        order_id => $o1, amount => 2590, currency => 'EUR',
        payment_intent => $pi->{id}, idempotency_key => "k-cap2-$o1");
ok(wait_for(sub { (metric($sim, 'participant_sim_doubles_total',
                          type => 'payment.capture') // 0) == 1 }, 400),
   'a second capture of one order under another key is counted a double');
is(metric($sim, 'participant_sim_doubles_total',
          type => 'payment.authorize'), 0,
   'the authorization sent twice with one key is a repeat, not a double');
like(CommerceTest->slurp($sims{$sim}{log}),
     qr/order \Q$o1\E: a second payment.capture under another idempotency/,
     'and logged');

# a command that breaks the contract: refused, counted, nothing sent
command('commerce.payments.commands', type => 'payment.authorize',
        order_id => "ord-bad-$tag", idempotency_key => "k-bad-$tag");
produce('commerce.payments.commands', "ord-bad-$tag", 'not json');
ok(wait_for(sub { (metric($sim, 'participant_sim_outcomes_total',
                          type => 'unknown', outcome => 'invalid') // 0) == 1
                  && (metric($sim, 'participant_sim_outcomes_total',
                             type => 'payment.authorize',
                             outcome => 'invalid') // 0) == 1 }, 400),
   'an authorization without amount and a body that is not JSON: invalid');
like(CommerceTest->slurp($sims{$sim}{log}),
     qr/"msg":"command refused: \\"amount\\" must be an integer/,
     'the log says what is wrong');

is(stop_sim($sim), 0, 'SIGTERM: exit 0');
like(CommerceTest->slurp($sims{$sim}{log}), qr/"msg":"exit 0"/,
     'the log ends with exit 0');
like(CommerceTest->slurp($sims{$sim}{log}),
     qr/"msg":"command".*"order_id":"\Q$o1\E".*
        "traceparent":"\Q$traceparent\E"/x,
     'the command\'s log line has its order id and traceparent');

# ---------------------------------------------------------- declines ---

my $o3 = "ord-decl-$tag";
authorize('t.pay.decline', $o3, "k-auth-$o3");
ship('t.ship.decline', $o3, "k-ship-$o3");
$sim = start_sim(args => [ '--decline_rate=1',
                           '--kafka.topics=t.pay.decline,t.ship.decline',
                           '--replies_topic=t.replies.decline' ]);

ok(wait_for(sub { @ev = events_of($o3) }, 400), 'a declined authorization');
is($ev[0]{ev}{type}, 'payment_intent.payment_failed',
   'a decline answers payment_intent.payment_failed');
my $err = $ev[0]{ev}{data}{object}{last_payment_error};
is($err->{code}, 'card_declined', 'last_payment_error.code card_declined');
is($err->{decline_code}, 'insufficient_funds',
   'last_payment_error.decline_code: final');
is($ev[0]{ev}{data}{object}{status}, 'requires_payment_method',
   'status requires_payment_method');

ok(wait_for(sub { @rep = replies_of('t.replies.decline', $o3) }, 400),
   'a declined shipment');
is($rep[0]{r}{type}, 'shipment.failed', 'shipment.failed');
is($rep[0]{r}{retryable}, JSON::PP::false, 'retryable false');
is($rep[0]{r}{reason}, 'address_undeliverable', 'with its reason');
is(metric($sim, 'participant_sim_outcomes_total',
          type => 'payment.authorize', outcome => 'declined'), 1,
   'counted declined');
is(stop_sim($sim), 0, 'exit 0');

# --------------------------------------------------- transient errors ---

my $o4 = "ord-tr-$tag";
authorize('t.pay.transient', $o4, "k-auth-$o4");
ship('t.ship.transient', $o4, "k-ship-$o4");
$sim = start_sim(args => [ '--transient_rate=1',
                           '--kafka.topics=t.pay.transient,t.ship.transient',
                           '--replies_topic=t.replies.transient' ]);

ok(wait_for(sub { @ev = events_of($o4) }, 400), 'a transient failure');
is($ev[0]{ev}{type}, 'payment_intent.payment_failed',
   'payment_intent.payment_failed');
$err = $ev[0]{ev}{data}{object}{last_payment_error};
is($err->{code}, 'processing_error', 'code processing_error: retryable');
ok(!exists $err->{decline_code}, 'and no decline_code');
ok(wait_for(sub { @rep = replies_of('t.replies.transient', $o4) }, 400),
   'a transient shipment failure');
is($rep[0]{r}{type}, 'shipment.failed', 'shipment.failed');
is($rep[0]{r}{retryable}, JSON::PP::true, 'retryable true');

# a retry of the same key after a transient error is drawn again (and
# counted a repeat): here transient again, a second event
authorize('t.pay.transient', $o4, "k-auth-$o4");
ok(wait_for(sub { (@ev = events_of($o4)) == 2 }, 400),
   'the retry after a transient error gets a new event');
isnt($ev[0]{ev}{id}, $ev[1]{ev}{id}, 'with another event id');
is(metric($sim, 'participant_sim_repeats_total',
          type => 'payment.authorize'), 1, 'the retry counted a repeat');
is(stop_sim($sim), 0, 'exit 0');

# ---------------------------------------------------------- no answer ---

my $o5 = "ord-silent-$tag";
authorize('t.pay.silent', $o5, "k-auth-$o5");
ship('t.ship.silent', $o5, "k-ship-$o5");
$sim = start_sim(args => [ '--no_answer_rate=1',
                           '--kafka.topics=t.pay.silent,t.ship.silent',
                           '--replies_topic=t.replies.silent' ]);

ok(wait_for(sub { (metric($sim, 'participant_sim_outcomes_total',
                          type => 'payment.authorize',
                          outcome => 'no_answer') // 0) == 1
                  && (metric($sim, 'participant_sim_outcomes_total',
                             type => 'shipment.create',
                             outcome => 'no_answer') // 0) == 1 }, 400),
   'no_answer_rate 1: both commands counted no_answer');
sleep 1;
is(scalar(events_of($o5)), 0, 'no webhook for the order');
is(scalar(replies_of('t.replies.silent', $o5)), 0, 'no reply either');
is(metric($sim, 'participant_sim_webhooks_total', result => 'delivered'), 0,
   'nothing POSTed');
is(metric($sim, 'participant_sim_pending'), 0, 'nothing waiting');
is(stop_sim($sim), 0, 'exit 0');

# ------------------------------------------- nginx 503 for a while ---

my $o6 = "ord-flaky-$tag";
authorize('t.pay.flaky', $o6, "k-auth-$o6");
$sim = start_sim(path => '/webhooks/flaky',
                 args => [ '--kafka.topics=t.pay.flaky' ]);

sub flaky_statuses {
    return () unless -f "$dir/flaky.log";
    return map { / HTTP\/1\.1" (\d{3}) / ? $1 : () }
           split /\n/, CommerceTest->slurp("$dir/flaky.log");
}

ok(wait_for(sub { grep({ $_ == 503 } flaky_statuses()) >= 3 }, 400),
   'nginx answered 503 three times: the webhook was retried');
open my $fh, '>', "$dir/open" or die;
close $fh;
ok(wait_for(sub { @ev = events_of($o6) }, 400),
   'once nginx takes it, the webhook is published');
ok(wait_for(sub { (metric($sim, 'participant_sim_webhooks_total',
                          result => 'delivered') // 0) == 1 }, 400),
   'counted delivered once');
my @st = flaky_statuses();
is(scalar(grep { $_ == 202 } @st), 1, 'one 202');
is(scalar(grep { $_ != 202 && $_ != 503 } @st), 0, 'no other answer');
is(metric($sim, 'participant_sim_webhooks_total', result => 'retried'),
   scalar(grep { $_ == 503 } @st), 'one retry per 503');
is(scalar(events_of($o6)), 1, 'one event on the topic');
is(stop_sim($sim), 0, 'exit 0');

# ------------------------------------------------------ configuration ---

my ($rc, $out) = $t->run({}, $sim_bin, "--kafka.brokers=$bs",
                         '--webhook_url=ftp://x', "--webhook_secret=x");
is($rc, 2, 'a webhook_url that is not http:// exits 2');
like($out, qr/webhook_url.*not http/, 'and says so');
($rc, $out) = $t->run({}, $sim_bin, "--kafka.brokers=$bs",
                      "--webhook_url=http://127.0.0.1:1/",
                      "--webhook_secret=x", '--decline_rate=0.6',
                      '--no_answer_rate=0.6');
is($rc, 2, 'rates adding up to more than 1 exit 2');
($rc, $out) = $t->run({}, $sim_bin, "--kafka.brokers=$bs",
                      "--webhook_url=http://127.0.0.1:1/",
                      "--webhook_secret=x", '--latency_ms_p50=50',
                      '--latency_ms_p99=10');
is($rc, 2, 'a p99 below the p50 exits 2');

$t->done;
