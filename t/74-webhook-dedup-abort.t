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
use Time::HiRes qw(sleep time);

use CommerceTest;

my $build = $ENV{COMMERCE_BUILD} // "$CommerceTest::REPO/build";
my $devbroker = "$build/bin/commerce-devbroker";
$devbroker = "$CommerceTest::REPO/build/bin/commerce-devbroker"
    unless -x $devbroker;

plan skip_all => 'commerce-devbroker not built (make workers)'
    unless -x $devbroker;
plan skip_all => 'kcat not installed'
    unless system('sh', '-c', 'command -v kcat >/dev/null') == 0;

my $t = CommerceTest->new;
my $tag = sprintf '%08x', int rand 0xffffffff;

my $broker = Broker->start($t->dir, $devbroker);
my $bs = $broker->{bootstrap};

$t->start_redis;

$t->write_nginx_conf(<<"EOF");
    commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;
    commerce_redis_reconnect_min 10ms;
    commerce_redis_reconnect_max 200ms;
    commerce_redis_breaker_timeout 300ms;

    commerce_kafka_brokers $bs;
    commerce_kafka_property reconnect.backoff.max.ms 200;
    commerce_kafka_delivery_timeout 20s;

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

# Polls (bounded) until the code returns true.
sub wait_for {
    my ($code, $tries) = @_;
    for (1 .. $tries // 200) {
        my $v = $code->();
        return $v if $v;
        sleep 0.05;
    }
    return undef;
}

sub in_kafka {
    my ($body) = @_;
    return grep { defined $_->{value} && $_->{value} eq $body }
           Broker::consume($bs, 'd.abort');
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


package Broker;

use IO::Socket::UNIX;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep);

sub start {
    my ($class, $dir, $bin, %o) = @_;

    my $bootfile = "$dir/bootstrap";
    my $ctl = "$dir/broker.ctl";

    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', "$dir/broker.log" or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT;
        exec $bin, "--bootstrap-file=$bootfile", "--control=$ctl",
             '--brokers=' . ($o{brokers} // 3), '--partitions=3'
            or POSIX::_exit(127);
    }

    for (1 .. 200) {
        last if -s $bootfile;
        die "devbroker exited\n" if waitpid($pid, WNOHANG) == $pid;
        sleep 0.05;
    }

    open my $fh, '<', $bootfile or die "devbroker did not start\n";
    my $bs = <$fh>;
    close $fh;
    chomp $bs;

    return bless { pid => $pid, ctl => $ctl, bootstrap => $bs }, $class;
}


sub control {
    my ($self, $cmd) = @_;

    my $s = IO::Socket::UNIX->new(Peer => $self->{ctl})
        or die "devbroker control: $!\n";
    print {$s} "$cmd\n";
    shutdown $s, 1;
    my $reply = join '', <$s>;
    close $s;
    die "devbroker '$cmd': $reply" unless $reply =~ /^ok/;

    return $reply;
}


sub stop {
    my ($self) = @_;

    return unless $self->{pid};
    kill 'TERM', $self->{pid};
    waitpid $self->{pid}, 0;
    $self->{pid} = undef;
}


sub DESTROY { $_[0]->stop }


# kcat prints lengths before key and value, so that any bytes parse.
sub consume {
    my ($bs, $topic) = @_;

    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>', '/dev/null';
        # bounded: a consumer must not hang the suite
        exec 'timeout', '60', 'kcat', '-C', '-b', $bs, '-t', $topic,
             '-o', 'beginning', '-e', '-q',
             '-f', "MSG %p %o %K %S\n%k%s\n%h\n"
            or POSIX::_exit(127);
    }
    binmode $fh;
    local $/;
    my $out = <$fh> // '';
    close $fh;

    my @msgs;
    my $names = qr/source|delivery_id|signature_scheme|received_at|
                   content_type|traceparent/x;

    while ($out =~ /\GMSG (\d+) (\d+) (-?\d+) (-?\d+)\n/gc) {
        my ($p, $o, $klen, $vlen) = ($1, $2, $3, $4);
        my $pos = pos $out;
        my $key = $klen >= 0 ? substr($out, $pos, $klen) : undef;
        $pos += $klen if $klen > 0;
        my $value = $vlen >= 0 ? substr($out, $pos, $vlen) : undef;
        $pos += $vlen if $vlen > 0;
        $pos++;                                     # "\n"
        my $nl = index($out, "\n", $pos);
        my $hdr = substr($out, $pos, $nl - $pos);
        pos($out) = $nl + 1;

        my %h;
        for my $kv (split /,(?=(?:$names)=)/, $hdr) {
            my ($k, $v) = split /=/, $kv, 2;
            $h{$k} = $v // '';
        }

        push @msgs, { partition => $p, offset => $o, key => $key,
                      value => $value, h => \%h };
    }

    return @msgs;
}
