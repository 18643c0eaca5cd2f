#!/usr/bin/perl

# Many requests in flight at once over few Redis connections: every
# response carries the document of its own request (no crossed replies),
# with small pools (1 and 2) and large replies mixed in.

use strict;
use warnings;

use IO::Select;
use Test::More;
use Time::HiRes qw(time);
use lib 't/lib';
use CommerceTest;

my $t = CommerceTest->new;

$t->start_redis;

# distinct documents of varied sizes; a few large ones
my %doc;

for my $i (0 .. 299) {
    my $id = sprintf 'c-%03d', $i;
    my $pad = $i % 50 == 7 ? 300_000 + $i : ($i * 37) % 3000;
    $doc{$id} = qq({"id":"$id","pad":") . (chr(97 + $i % 26) x $pad) . '"}';
}

$t->redis_pipeline(map { ['SET', "cat:item:$_", $doc{$_}] } sort keys %doc);
$t->redis_pipeline(
    (map { ['ZADD', 'cat:index', 0, $_] } grep { $doc{$_} !~ /.{4000}/s }
     sort keys %doc),
    (map { ['HSET', 'inv:s1', "k$_", qq({"sku":"k$_","on_hand":$_})] }
     0 .. 99),
);

my @listed = grep { $doc{$_} !~ /.{4000}/s } sort keys %doc;


# The request for slot $n and its expected status and body.
sub plan_request {
    my ($n) = @_;

    if ($n % 10 == 3) {
        return ("/v1/catalog/missing-$n", 404, undef);
    }

    if ($n % 15 == 4) {
        my $k = $n % @listed;
        my @page = @listed[$k + 1 .. $k + 3];
        return ("/v1/catalog?limit=3&after=$listed[$k]", 200,
                '{"items":[' . join(',', map { $doc{$_} } @page)
                . '],"next":"' . $page[-1] . '"}')
            if $k + 4 <= $#listed;
    }

    if ($n % 15 == 9) {
        my $k = $n % 100;
        return ("/v1/stores/s1/inventory/k$k", 200,
                qq({"sku":"k$k","on_hand":$k}));
    }

    my $id = sprintf 'c-%03d', $n % 300;
    return ("/v1/catalog/$id", 200, $doc{$id});
}


# $sockets connections, $per pipelined requests on each, all written before
# any is read; then every response is checked against its request.
sub burst {
    my ($sockets, $per, $offset) = @_;

    my (@conns, %want);
    my $sel = IO::Select->new;

    for my $s (0 .. $sockets - 1) {
        my $c = $t->conn(timeout => 30) or return fail("connect: $!");
        $c->{want} = [];
        for my $k (0 .. $per - 1) {
            my $n = $offset + $s * $per + $k;
            my ($path, $st, $body) = plan_request($n);
            push @{ $c->{want} }, [$path, $st, $body];
        }
        push @conns, $c;
    }

    # all requests in flight before reading anything
    for my $c (@conns) {
        $c->send_raw(join '', map {
            push @{ $c->{pending} }, 'GET';
            "GET $_->[0] HTTP/1.1\r\nHost: x\r\n\r\n"
        } @{ $c->{want} });
        $sel->add($c->sock);
    }

    my %by_sock = map { (fileno($_->sock) => $_) } @conns;
    my ($good, $bad) = (0, 0);
    my $deadline = time + 30;

    while ($sel->count && time < $deadline) {
        for my $fh ($sel->can_read(1)) {
            my $c = $by_sock{fileno $fh};
            my $n = $c->fill;

            while (my $r = $c->take) {
                my ($path, $st, $body) = @{ shift @{ $c->{want} } };
                my $got = $r->{body};
                $got =~ s/\n\z// if $path =~ /\?/;  # lists may end in \n
                if ($r->{status} == $st
                    && (!defined $body || $got eq $body))
                {
                    $good++;
                } else {
                    $bad++;
                    diag("$path: want $st, got $r->{status} "
                         . substr($r->{body}, 0, 80)) if $bad < 10;
                }
            }

            if (!@{ $c->{want} } || !$n) {
                $bad += @{ $c->{want} };
                diag("connection closed with " . @{ $c->{want} }
                     . " answers missing") if @{ $c->{want} } && $bad < 10;
                @{ $c->{want} } = ();
                $sel->remove($fh);
                $c->close;
            }
        }
    }

    $bad += @{ $_->{want} } for @conns;

    return ($good, $bad);
}


for my $case ([1, 1], [2, 1], [2, 2], [1, 2]) {
    my ($pool, $workers) = @$case;
    my $name = "pool_size $pool, $workers worker(s)";

    $t->write_nginx_conf(<<"EOF", workers => $workers);
commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;
commerce_redis_pool_size $pool;

server {
    listen 127.0.0.1:%%PORT_HTTP%%;

    location ~ ^/v1/catalog/(?<item_id>[^/]+)\$ {
        commerce_catalog_item \$item_id;
    }

    location = /v1/catalog {
        commerce_catalog_list;
    }

    location ~ ^/v1/stores/(?<store_id>[^/]+)/inventory/(?<sku>[^/]+)\$ {
        commerce_inventory_item \$store_id \$sku;
    }
}
EOF

    $t->start_nginx;

    my ($good, $bad) = burst(50, 4, 0);
    is($bad, 0, "$name: 200 requests over 50 sockets, none crossed");
    is($good, 200, "$name: 200 answers");

    ($good, $bad) = burst(200, 1, 1000);
    is($bad, 0, "$name: 200 connections with one request each");

    ($good, $bad) = burst(5, 60, 2000);
    is($bad, 0, "$name: 300 requests pipelined on 5 connections");

    # the per-worker pool is bounded: no more Redis connections than
    # pool_size per worker (plus this test's own connection)
    my $clients = $t->redis_cmd('CLIENT', 'LIST');
    my $n = () = $clients =~ /^id=/mg;
    ok($n <= $pool * $workers + 1,
       "$name: at most pool_size x workers Redis connections ($n)");

    $t->stop_nginx;
}

$t->done;
