#!/usr/bin/perl

# nginx -s reload under load: clients on keepalive and on new connections
# see no failure across three reloads; old workers exit and their Redis
# connections go with them.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use lib 't/lib';
use CommerceTest;

my $t = CommerceTest->new;

my $WORKERS = 2;
my $POOL = 2;

$t->start_redis;

my %doc = map { ("r-$_" => qq({"id":"r-$_","n":$_})) } 1 .. 50;
$t->redis_pipeline((map { ['SET', "cat:item:$_", $doc{$_}] } keys %doc),
                   (map { ['ZADD', 'cat:index', 0, $_] } keys %doc));

$t->write_nginx_conf(<<"EOF", workers => $WORKERS);
commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;
commerce_redis_pool_size $POOL;

server {
    listen 127.0.0.1:%%PORT_HTTP%%;
    keepalive_requests 10000;

    location ~ ^/v1/catalog/(?<item_id>[^/]+)\$ {
        commerce_catalog_item \$item_id;
    }

    location = /v1/catalog {
        commerce_catalog_list;
    }
}
EOF

$t->start_nginx;

my $stop = $t->dir . '/stop';
my $out = $t->dir . '/load';


# The client loop: each result line is "ok" or a failure description.  A
# request on a reused keepalive connection that the server closed before
# sending any byte is retried once on a new connection, as HTTP clients do
# (RFC 9112 9.3.1): graceful shutdown closes idle keepalive connections.
sub client {
    my ($tag, $keepalive) = @_;

    open my $fh, '>', "$out.$tag" or die;
    my ($c, $i, $retries) = (undef, 0, 0);

    until (-e $stop) {
        my $id = 'r-' . (1 + $i++ % 50);
        my $path = $i % 10 ? "/v1/catalog/$id" : '/v1/catalog?limit=5';
        my $r;

        if ($keepalive) {
            my $reused = $c && $c->served > 0;
            $c //= $t->conn;
            $r = $c ? $c->request(GET => $path)
                    : { status => 0, error => "connect: $!" };

            if ($r->{status} == 0 && $reused && !$r->{partial}
                && $r->{error} =~ /closed|reset|Broken pipe|write/i)
            {
                $retries++;
                $c = $t->conn;
                $r = $c ? $c->request(GET => $path)
                        : { status => 0, error => "connect: $!" };
            }

            undef $c if $r->{status} == 0
                        || ($r->{headers}{connection} // '') =~ /close/i;
        } else {
            $r = $t->http(GET => $path);
        }

        my $ok = $r->{status} == 200
                 && ($path =~ /\?/ || $r->{body} eq $doc{$id});
        print {$fh} $ok ? "ok\n"
                        : "FAIL $path $r->{status} "
                          . ($r->{error} // substr($r->{body}, 0, 80)) . "\n";
    }

    print {$fh} "retries $retries\n";
    close $fh;
}

my @kids = (
    $t->fork_child(sub { client('ka1', 1) }),
    $t->fork_child(sub { client('ka2', 1) }),
    $t->fork_child(sub { client('new', 0) }),
);

sleep 0.5;

my @gens = ([$t->worker_pids]);

for my $n (1 .. 3) {
    ok($t->reload_nginx, "reload $n: old workers exited, new ones up");
    my @w = $t->worker_pids;
    is(scalar @w, $WORKERS, "reload $n: $WORKERS workers");
    my %old = map { $_ => 1 } map { @$_ } @gens;
    ok(!(grep { $old{$_} } @w), "reload $n: all workers are new");
    push @gens, \@w;
    sleep 0.5;
}

open my $sf, '>', $stop or die;
close $sf;

for my $pid (@kids) {
    waitpid($pid, 0);
    is($?, 0, "load client $pid exited cleanly");
}

for my $tag (qw(ka1 ka2 new)) {
    my @lines = split /\n/, $t->slurp("$out.$tag");
    my ($retries) = map { /^retries (\d+)/ ? $1 : () } @lines;
    my @ok = grep { $_ eq 'ok' } @lines;
    my @fail = grep { /^FAIL/ } @lines;

    ok(@ok > 0, "client $tag: requests were served (" . @ok . ')');
    ok(!@fail, "client $tag: no failure across the reloads")
        or diag(join "\n", @fail[0 .. ($#fail > 20 ? 20 : $#fail)]);
    diag("client $tag: " . @ok . " ok, keepalive retries: "
         . ($retries // 0));
}

# every old worker is gone
my @old = map { @$_ } @gens[0 .. $#gens - 1];
ok(!(grep { -e "/proc/$_" && CommerceTest::_alive($_) } @old),
   'every old worker process exited');

# old workers closed their Redis connections: the count settles at no more
# than pool_size per live worker (plus this test's own connection)
my $n;
for (1 .. 100) {
    my $clients = $t->redis_cmd('CLIENT', 'LIST');
    $n = () = $clients =~ /^id=/mg;
    last if $n <= $WORKERS * $POOL + 1;
    sleep 0.1;
}
ok($n <= $WORKERS * $POOL + 1,
   "Redis connections after the reloads: $n <= workers x pool_size + 1");

# still serving after the reloads
my $r = $t->http(GET => '/v1/catalog/r-7');
is($r->{body}, $doc{'r-7'}, 'served after the reloads');

my @notice = $t->log_grep(qr/\[alert\]|\[crit\]|\[emerg\]/);
ok(!@notice, 'no alert in the log across reloads') or diag(join '', @notice);

$t->done;
