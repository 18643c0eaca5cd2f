#!/usr/bin/perl
# commerce_webhook across nginx reloads: every webhook answered 202 is in
# Kafka exactly once, a reload causes no 5xx, and a gracefully exiting
# worker stays until its pending deliveries are resolved.  A fast shutdown
# drops what the bounded flush cannot deliver, without alerts.

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

$t->write_nginx_conf(<<"EOF2", workers => 2);
    commerce_kafka_brokers $bs;
    commerce_kafka_property reconnect.backoff.max.ms 200;
    commerce_kafka_delivery_timeout 5s;
    commerce_kafka_breaker_threshold 0;   # deliveries wait (t/75: breaker)
    commerce_kafka_flush_timeout 300ms;

    server {
        listen 127.0.0.1:%%PORT_HTTP%%;

        location = /webhooks/shop {
            commerce_webhook shop;
            commerce_webhook_key \$http_x_store_id;
            commerce_webhook_delivery_id \$http_webhook_id;
        }
    }
EOF2

$t->start_nginx;

# ------------------------------------------------- reloads under load ---

# Each client posts until the reloads are over (bounded), so that the load
# spans all of them.
my $clients = 2;
my $max_per_client = 1_000_000;
my $stop = $t->dir . '/stop';
my (@results, @children);

for my $n (1 .. $clients) {
    my $out = $t->dir . "/client$n.txt";
    push @results, $out;

    push @children, $t->fork_child(sub {
        open my $fh, '>', $out or die "$out: $!";
        $fh->autoflush(1);
        for my $i (1 .. $max_per_client) {
            if (-e $stop) {
                print {$fh} "stopped\n";
                last;
            }
            my $id = "c$n-$i-$$";
            my $r = $t->http(POST => '/webhooks/shop',
                             'X-Store-Id' => "store-" . ($i % 7),
                             'webhook-id' => $id,
                             -body => qq({"client":$n,"seq":$i,"id":"$id"}),
                             -timeout => 30);
            print {$fh} "$r->{status} $id\n";
        }
        close $fh;
    });
}

my $reloads_ok = 0;
for (1 .. 3) {
    sleep 0.3;
    $reloads_ok++ if $t->reload_nginx;
}
sleep 0.3;
open my $sfh, '>', $stop or die "$stop: $!";
close $sfh;

is($reloads_ok, 3, 'three reloads under webhook load completed');

waitpid $_, 0 for @children;

my (%status, %count);
for my $out (@results) {
    open my $fh, '<', $out or die "$out: $!";
    while (<$fh>) {
        my ($s, $id) = split;
        if ($s eq 'stopped') {
            $count{stopped}++;
            next;
        }
        $status{$id} = $s;
    }
    close $fh;
}

my $total = scalar keys %status;
# every client was still sending when the reloads were done (a client
# that ran out of its budget first stopped early: not a load through them)
is($count{stopped} // 0, $clients,
   "load ran through the reloads ($total webhooks)");
my @not_202 = grep { $status{$_} != 202 } sort keys %status;
is(scalar @not_202, 0, 'all answered 202, no 5xx from the reloads')
    or diag(join ' ', map { "$_:$status{$_}" } first10(@not_202));

for my $m ($broker->consume('commerce.inbound')) {
    $count{ $m->{h}{delivery_id} }++;
}

my @lost = grep { $status{$_} == 202 && !$count{$_} } keys %status;
my @dup = grep { ($count{$_} // 0) > 1 } keys %status;
is(scalar @lost, 0, 'every 202 is in Kafka')
    or diag('lost: ' . join ' ', first10(@lost));
is(scalar @dup, 0, 'none twice') or diag('twice: ' . join ' ', first10(@dup));

# ---------------------------- an exiting worker waits for its delivery ---

$broker->control('down all');

my @old = $t->worker_pids;
my $c = $t->conn;
$c->send_request(POST => '/webhooks/shop', 'webhook-id' => 'pending-1',
                 -body => '{"pending":1}');
sleep 0.3;

kill 'HUP', $t->master_pid;

my %was = map { $_ => 1 } @old;
for (1 .. 200) {
    last if grep({ !$was{$_} } $t->worker_pids) >= 2;
    sleep 0.05;
}

# the idle old worker exits at once; the one waiting for the broker stays
for (1 .. 200) {
    last if grep({ kill 0, $_ } @old) <= 1;
    sleep 0.05;
}
sleep 0.3;

my @alive = grep { kill 0, $_ } @old;
is(scalar @alive, 1, 'the old worker with a pending delivery stays');

$broker->control('up all');

my $r = $c->read_response;
is($r->{status}, 202, 'its webhook is acknowledged after the broker is back');
is(JSON::PP->new->decode($r->{body} || '{}')->{delivery_id}, 'pending-1',
   'by the old worker');

for (1 .. 200) {
    last unless grep { kill 0, $_ } @alive;
    sleep 0.05;
}
ok(!grep({ kill 0, $_ } @alive), 'then it exits');

is(scalar(grep { $_->{h}{delivery_id} eq 'pending-1' }
          $broker->consume('commerce.inbound')), 1,
   'the pending webhook is in Kafka once');

# ------------------------------------ fast shutdown with a pending one ---

$broker->control('down all');

$c = $t->conn;
$c->send_request(POST => '/webhooks/shop', 'webhook-id' => 'term-1',
                 -body => '{"term":1}');
sleep 0.3;

ok($t->stop_nginx(signal => 'TERM'), 'SIGTERM with a pending delivery');
$r = $c->read_response;
isnt($r->{status}, 202, 'that webhook is not acknowledged');
ok(scalar $t->log_grep(qr/not delivered within the flush timeout/),
   'the bounded flush dropped it');

$broker->control('up all');
is(scalar(grep { $_->{h}{delivery_id} eq 'term-1' }
          $broker->consume('commerce.inbound')), 0,
   'and it is not in Kafka');

$broker->stop;

$t->done;


sub first10 { return grep { defined } @_[0 .. 9] }
