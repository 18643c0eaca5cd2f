#!/usr/bin/perl

# ngx_http_commerce_limit_module: GCRA rate limits, local (shared memory)
# and global (Redis), their headers, dry run, reload, fallbacks and
# configuration errors.
#
# GCRA with rate=Nr/m and burst=b: a fresh key admits exactly b + 1
# requests back to back, then one more every 60/N seconds.  The rates below
# are slow (an interval of 10 s or more) wherever a test counts requests,
# so that no refill can happen between them.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP qw(decode_json);
use Test::More;
use Time::HiRes qw(sleep time);

use CommerceTest;

my $t = CommerceTest->new;

$t->start_redis;

mkdir $t->dir . '/html';
open my $fh, '>', $t->dir . '/html/ok.txt' or die $!;
print {$fh} "ok\n";
close $fh;

my $zones = <<'EOF';
    commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;
    commerce_redis_connect_timeout 200ms;
    commerce_redis_reconnect_max 500ms;

    log_format rl '$arg_k $status $commerce_limit_status';

    commerce_limit_zone $arg_k zone=local1:1m rate=6r/m burst=2;
    commerce_limit_zone $arg_k zone=dry:1m rate=6r/m burst=1;
    commerce_limit_zone $arg_k zone=fast:1m rate=1r/s;
    commerce_limit_zone $arg_k zone=tiny:32k rate=1r/m;
    commerce_limit_zone $arg_k zone=glob:1m rate=6r/m burst=2 scope=global;
    commerce_limit_zone $arg_k zone=gallow:1m rate=6r/m scope=global
                        fallback=allow timeout=300ms;
    commerce_limit_zone $arg_k zone=gdeny:1m rate=6r/m scope=global
                        fallback=deny;
    commerce_limit_zone $http_x_source zone=src:1m rate=6r/m burst=1;
EOF

my $server = <<'EOF';
    server {
        listen 127.0.0.1:%%PORT_%%NAME%%%%;
        root %%TESTDIR%%/html;
        default_type text/plain;
        access_log %%TESTDIR%%/%%NAME%%.access.log rl;

        location /local { commerce_limit zone=local1; try_files /ok.txt =404; }
        location /missing { commerce_limit zone=local1; try_files /no =404; }
        location /dry {
            commerce_limit zone=dry dry_run;
            try_files /ok.txt =404;
        }
        location /fast { commerce_limit zone=fast; try_files /ok.txt =404; }
        location /tiny { commerce_limit zone=tiny; try_files /ok.txt =404; }
        location /glob { commerce_limit zone=glob; try_files /ok.txt =404; }
        location /gallow { commerce_limit zone=gallow; try_files /ok.txt =404; }
        location /gdeny { commerce_limit zone=gdeny; try_files /ok.txt =404; }
        location /src { commerce_limit zone=src; try_files /ok.txt =404; }

        location /both {
            commerce_limit zone=local1;
            commerce_limit zone=fast;
            try_files /ok.txt =404;
        }

        location /free { try_files /ok.txt =404; }

        location ~ ^/cat/(?<id>[^/]+)$ {
            commerce_limit zone=fast;
            commerce_catalog_item $id;
        }

        location /redir { commerce_limit zone=local1; try_files /no @named; }
        location @named { commerce_limit zone=local1; try_files /ok.txt =404; }

        location /teapot {
            commerce_limit zone=fast;
            commerce_limit_status 418;
            try_files /ok.txt =404;
        }
    }
EOF

sub conf_for {
    my ($name) = @_;
    (my $s = $server) =~ s/%%NAME%%/$name/g;
    return $zones . $s;
}

$t->write_nginx_conf(conf_for('A'), name => 'A', workers => 2);
$t->write_nginx_conf(conf_for('B'), name => 'B', workers => 1);
$t->start_nginx(name => 'A', port => $t->port('A'));
$t->start_nginx(name => 'B', port => $t->port('B'));

my $A = $t->port('A');
my $B = $t->port('B');

sub get {
    my ($port, $path, %h) = @_;
    return $t->http(GET => $path, -port => $port, %h);
}

sub rl {
    my ($r) = @_;
    my $h = $r->{headers};
    return join ' ', map { $h->{"ratelimit-$_"} // '-' }
                     qw(limit remaining reset policy);
}

sub eval_calls {
    my ($stats) = $t->redis_cmd('INFO', 'commandstats');
    return $stats =~ /^cmdstat_eval:calls=(\d+)/m ? $1 : 0;
}

sub access_log {
    my ($name) = @_;
    # the access log is written when the request is finalized
    sleep 0.2;
    return [split /\n/, $t->slurp($t->dir . "/$name.access.log")];
}


# ------------------------------------------------------------- exactness ---

{
    my @r = map { get($A, '/local?k=alice') } 1 .. 4;

    is_deeply([map { $_->{status} } @r], [200, 200, 200, 429],
              'rate=6r/m burst=2: exactly 3 pass, the 4th is refused');

    is_deeply([map { $_->{headers}{'ratelimit-remaining'} } @r],
              [2, 1, 0, 0], 'RateLimit-Remaining counts down to 0');

    is($_->{headers}{'ratelimit-limit'}, 3, 'RateLimit-Limit is burst + 1')
        for @r;
    is($_->{headers}{'ratelimit-policy'}, '3;w=30',
       'RateLimit-Policy: 3 requests refilled in 30 s') for @r;

    my @reset = map { $_->{headers}{'ratelimit-reset'} } @r;
    ok($reset[0] >= 1 && $reset[0] <= 10, "first reset within one interval")
        or diag("@reset");
    ok($reset[2] > 20 && $reset[2] <= 30, 'full quota back in 30 s')
        or diag("@reset");

    my $x = $r[3];
    is($x->{headers}{'content-type'}, 'application/json', '429 is JSON');
    my $body = eval { decode_json($x->{body}) } // {};
    is($body->{error}, 'rate_limited', 'error code rate_limited');
    ok(length($body->{message} // ''), 'a message');
    my $ra = $x->{headers}{'retry-after'} // 0;
    ok($ra >= 1 && $ra <= 10, "Retry-After is the wait for one cell ($ra)");

    my $bob = get($A, '/local?k=bob');
    is($bob->{status}, 200, 'another key is independent');
    is($bob->{headers}{'ratelimit-remaining'}, 2, 'with its own quota');

    is(get($A, '/local?k=alice')->{status}, 429,
       'refused requests cost nothing but do not pass either');

    my $miss = get($A, '/missing?k=carol');
    is($miss->{status}, 404, 'an error response of a limited location');
    is(rl($miss), '3 2 10 3;w=30', 'carries the headers too');

    my @free = map { get($A, '/free?k=alice') } 1 .. 5;
    is_deeply([map { $_->{status} } @free], [(200) x 5],
              'an unlimited location is not limited');
    ok(!exists $free[0]{headers}{'ratelimit-limit'}, 'and has no headers');

    my @empty = map { get($A, '/local') } 1 .. 6;
    is_deeply([map { $_->{status} } @empty], [(200) x 6],
              'an empty key is not limited');
    ok(!exists $empty[0]{headers}{'ratelimit-limit'},
       'and gets no headers');

    my @src = map { get($A, '/src', 'X-Source' => 'mobile') } 1 .. 3;
    is_deeply([map { $_->{status} } @src], [200, 200, 429],
              'a header key ($http_x_source) works the same');
    is(get($A, '/src', 'X-Source' => 'web')->{status}, 200,
       'per header value');

    my @redir = map { get($A, '/redir?k=ivan') } 1 .. 4;
    is_deeply([map { $_->{status} } @redir], [200, 200, 200, 429],
              'a request is limited once across an internal redirect');
    is_deeply([map { $_->{headers}{'ratelimit-remaining'} } @redir],
              [2, 1, 0, 0], 'and its final response has the headers');

    $t->redis_cmd('SET', 'cat:item:sku1', '{"id":"sku1"}');
    my @cat = map { get($A, '/cat/sku1?k=cat') } 1 .. 2;
    is($cat[0]{status}, 200, 'a catalog read under a limit');
    is($cat[0]{body}, '{"id":"sku1"}', 'serves the item');
    is(rl($cat[0]), '1 0 1 1;w=1', 'with the headers');
    is($cat[1]{status}, 429, 'the catalog read is limited');
    my $nf = get($A, '/cat/none?k=cat2');
    is($nf->{status}, 404, 'a catalog 404');
    is(rl($nf), '1 0 1 1;w=1', 'keeps the headers');

    my @teapot = map { get($A, '/teapot?k=t') } 1 .. 2;
    is($teapot[1]{status}, 418, 'commerce_limit_status sets the status');
}


# ---------------------------------------------------------------- refill ---

{
    my $a = get($A, '/fast?k=f');
    my $b = get($A, '/fast?k=f');
    is($a->{status}, 200, 'rate=1r/s: one passes');
    is($b->{status}, 429, 'the next at once is refused');
    is($b->{headers}{'retry-after'}, 1, 'Retry-After: 1');

    sleep 1.5;

    is(get($A, '/fast?k=f')->{status}, 200,
       'after the emission interval one more passes');
    is(get($A, '/fast?k=f')->{status}, 429, 'and only one');
}


# ------------------------------------------- keepalive and request body ---

{
    my $c = $t->conn(port => $A);
    my $body = 'x' x 5000;

    my $p1 = $c->request(POST => '/fast?k=post', -body => $body);
    my $p2 = $c->request(POST => '/fast?k=post', -body => $body);
    my $g = $c->request(GET => '/free');
    $c->close;

    isnt($p1->{status}, 429, 'POST: the first passes the limit');
    is($p2->{status}, 429, 'the second is refused');
    is($g->{status}, 200, 'its unread body was discarded: keepalive goes on');
    is($g->{body}, "ok\n", 'with the right response');
}


# ------------------------------------------------------ several limits ---

{
    my $a = get($A, '/both?k=multi');
    is($a->{status}, 200, 'two limits: first passes');
    is($a->{headers}{'ratelimit-remaining'}, 0,
       'headers from the limit with the least quota left');
    is($a->{headers}{'ratelimit-limit'}, 1, 'its limit');

    is(get($A, '/both?k=multi')->{status}, 429, 'the second is refused');

    # the refusal by "fast" gave back the cell "local1" lent it
    my $l = get($A, '/local?k=multi');
    is($l->{headers}{'ratelimit-remaining'}, 1,
       'a refused request keeps no cell of the other limits');
}


# --------------------------------------------------------------- dry run ---

{
    my @r = map { get($A, '/dry?k=dave') } 1 .. 5;

    is_deeply([map { $_->{status} } @r], [(200) x 5], 'dry run never refuses');
    is_deeply([map { $_->{headers}{'ratelimit-remaining'} } @r],
              [1, 0, 0, 0, 0], 'but the headers expose the decision');

    my @log = grep { /^dave / } @{ access_log('A') };
    is_deeply(\@log, ['dave 200 PASSED', 'dave 200 PASSED',
                      ('dave 200 REJECTED_DRY_RUN') x 3],
              '$commerce_limit_status says REJECTED_DRY_RUN');

    ok(scalar $t->log_grep(qr/limiting requests, dry run, by zone "dry"/, 'A'),
       'the dry-run decision is logged');

    my @l = grep { /^alice / } @{ access_log('A') };
    is_deeply([@l[0 .. 3]], ['alice 200 PASSED', 'alice 200 PASSED',
                             'alice 200 PASSED', 'alice 429 REJECTED'],
              '$commerce_limit_status PASSED and REJECTED');
    ok(scalar $t->log_grep(qr/limiting requests by zone "local1"/, 'A'),
       'the refusal is logged');
}


# ---------------------------------------------------------------- reload ---

{
    is(get($A, '/local?k=rita')->{status}, 200, 'reload: quota used')
        for 1 .. 2;

    ok($t->reload_nginx(name => 'A'), 'nginx -s reload');

    my $r = get($A, '/local?k=rita');
    is($r->{status}, 200, 'after reload: the third request passes');
    is($r->{headers}{'ratelimit-remaining'}, 0,
       'the bucket was not reset by the reload');
    is(get($A, '/local?k=rita')->{status}, 429, 'and the fourth is refused');
}


# ---------------------------------------------------------- global scope ---

{
    my $a1 = get($A, '/glob?k=gina');
    my $a2 = get($A, '/glob?k=gina');
    my $b1 = get($B, '/glob?k=gina');
    my $b2 = get($B, '/glob?k=gina');
    my $a3 = get($A, '/glob?k=gina');

    is_deeply([map { $_->{status} } $a1, $a2, $b1, $b2, $a3],
              [200, 200, 200, 429, 429],
              'global: two nginx share one quota of 3');
    is_deeply([map { $_->{headers}{'ratelimit-remaining'} } $a1, $a2, $b1],
              [2, 1, 0], 'the second instance sees the first consumption');
    is($b2->{headers}{'ratelimit-limit'}, 3, 'global headers');
    my $ra = $b2->{headers}{'retry-after'} // 0;
    ok($ra >= 1 && $ra <= 10, "global Retry-After ($ra)");

    my $pttl = $t->redis_cmd('PTTL', 'rl:glob:gina');
    ok($pttl > 20000 && $pttl <= 30000,
       "the Redis key expires when the quota is full again ($pttl ms)");

    my @log = grep { /^gina / } @{ access_log('B') };
    is_deeply(\@log, ['gina 200 PASSED', 'gina 429 REJECTED'],
              'global decisions in $commerce_limit_status');

    # Redis lost its script cache: EVALSHA -> NOSCRIPT -> EVAL
    $t->redis_cmd('SCRIPT', 'FLUSH');
    my $evals = eval_calls();
    my @r = map { get($B, '/glob?k=nora') } 1 .. 4;
    is_deeply([map { $_->{status} } @r], [200, 200, 200, 429],
              'after SCRIPT FLUSH the script is sent again');
    is($r[0]{headers}{'ratelimit-remaining'}, 2, 'with the same results');
    is(eval_calls() - $evals, 1, 'with one EVAL, then EVALSHA again');
}


# ------------------------------------------------------ Redis unavailable ---

{
    # a stalled Redis: the command times out, fallback=allow lets it pass
    $t->pause_redis;

    my $r = get($A, '/gallow?k=paula');
    is($r->{status}, 200, 'Redis stalled: fallback=allow passes');
    ok(!exists $r->{headers}{'ratelimit-limit'},
       'with no headers (the state is unknown)');

    ok(scalar $t->log_grep(qr/Redis timed out for zone "gallow"/, 'A'),
       'the timeout is logged');

    # a client gone while its command waits: the late reply is dropped
    my $c = $t->conn(port => $A);
    $c->send_request(GET => '/gallow?k=gone');
    sleep 0.1;
    $c->abort;
    sleep 0.1;

    $t->resume_redis;
    sleep 0.3;
    is(get($A, '/free')->{status}, 200, 'nginx serves after a client abort');

    $t->kill_redis;
    sleep 0.3;

    my @l = map { get($A, '/glob?k=lena') } 1 .. 4;
    is_deeply([map { $_->{status} } @l], [200, 200, 200, 429],
              'Redis down: fallback=local applies the zone locally');
    is($l[0]{headers}{'ratelimit-remaining'}, 2, 'with local headers');

    my @w = map { get($A, '/gallow?k=will') } 1 .. 4;
    is_deeply([map { $_->{status} } @w], [(200) x 4],
              'Redis down: fallback=allow passes everything');

    my $d = get($A, '/gdeny?k=dan');
    is($d->{status}, 503, 'Redis down: fallback=deny answers 503');
    my $body = eval { decode_json($d->{body}) } // {};
    is($body->{error}, 'rate_limiter_unavailable', 'with a JSON error');
    ok(($d->{headers}{'retry-after'} // 0) >= 1, 'and Retry-After');

    my @log = @{ access_log('A') };
    is_deeply([grep { /^paula / } @log], ['paula 200 FALLBACK'],
              'timeout: FALLBACK');
    is_deeply([grep { /^lena / } @log],
              [('lena 200 FALLBACK') x 3, 'lena 429 REJECTED'],
              'fallback=local: FALLBACK, then REJECTED');
    is_deeply([grep { /^will / } @log], [('will 200 FALLBACK') x 4],
              'fallback=allow: FALLBACK');
    is_deeply([grep { /^dan / } @log], ['dan 503 FALLBACK'],
              'fallback=deny: FALLBACK');

    # Redis back: global decisions again, once reconnected
    $t->start_redis;

    my $ok = 0;
    for my $i (1 .. 50) {
        my $x = get($A, "/gallow?k=back$i");
        if (exists $x->{headers}{'ratelimit-limit'}) {
            $ok = 1;
            last;
        }
        sleep 0.2;
    }
    ok($ok, 'Redis back: global limits decided by Redis again');
}


# -------------------------------------------------------- bounded memory ---

{
    my $c = $t->conn(port => $A);
    my @s;
    for my $i (1 .. 600) {
        push @s, $c->request(GET => "/tiny?k=key$i")->{status};
    }

    is_deeply([grep { $_ != 200 } @s], [],
              'a full zone evicts old keys instead of failing');

    is($c->request(GET => '/tiny?k=key600')->{status}, 429,
       'the most recent keys keep their state');
    $c->close;

    my @full = $t->log_grep(qr/zone "tiny" is full/, 'A');
    is(scalar @full, 1, 'the full zone is logged once, at warn')
        or diag(@full);
    like($full[0] // '', qr/\[warn\]/, 'at warn');
}


# ------------------------------------------------------- configuration ---

{
    my %bad = (
        'invalid rate' => 'commerce_limit_zone $arg_k zone=z:1m rate=10r/h;',
        'invalid rate "rate=0r/s"' =>
            'commerce_limit_zone $arg_k zone=z:1m rate=0r/s;',
        'must have the "rate=" parameter' =>
            'commerce_limit_zone $arg_k zone=z:1m;',
        'is too small' => 'commerce_limit_zone $arg_k zone=z:8k rate=1r/s;',
        'unknown commerce_limit_zone "nope"' =>
            "commerce_limit zone=nope;",
        'conflicts with already declared size' =>
            'commerce_limit_zone $arg_k zone=z:1m rate=1r/s;'
            . 'commerce_limit_zone $arg_k zone=z:2m rate=1r/s;',
        'duplicate commerce_limit_zone "z"' =>
            'commerce_limit_zone $arg_k zone=z:1m rate=1r/s;'
            . 'commerce_limit_zone $arg_k zone=z:1m rate=2r/s;',
        '"commerce_redis_server" is not set' =>
            'commerce_limit_zone $arg_k zone=z:1m rate=1r/s scope=global;',
        '"fallback=" is only valid with "scope=global"' =>
            'commerce_limit_zone $arg_k zone=z:1m rate=1r/s fallback=deny;',
        'invalid fallback' => 'commerce_limit_zone $arg_k zone=z:1m '
            . 'rate=1r/s scope=global fallback=maybe;',
        'invalid burst' =>
            'commerce_limit_zone $arg_k zone=z:1m rate=1r/s burst=-1;',
        'invalid parameter "colour=red"' =>
            'commerce_limit_zone $arg_k zone=z:1m rate=1r/s colour=red;',
        'value must be between 400 and 599' =>
            'commerce_limit_zone $arg_k zone=z:1m rate=1r/s;'
            . 'commerce_limit_status 200;',
        'is duplicate' => 'commerce_limit_zone $arg_k zone=z:1m rate=1r/s;'
            . 'server { location / { commerce_limit zone=z; '
            . 'commerce_limit zone=z; } }',
    );

    for my $want (sort keys %bad) {
        $t->write_nginx_conf($bad{$want}, name => 'bad');
        my ($ok, $out) = $t->nginx_test_ok('bad');
        ok(!$ok, "nginx -t fails: $want");
        like($out, qr/\Q$want\E/, "with a clear message: $want");
    }

    # a zone used before it is declared, at every level, is fine
    $t->write_nginx_conf(<<'EOF', name => 'good');
    commerce_limit zone=late;
    server {
        listen 127.0.0.1:%%PORT_GOOD%%;
        commerce_limit zone=late2 dry_run;
        location / { commerce_limit zone=late; commerce_limit zone=late2; }
    }
    commerce_limit_zone $binary_remote_addr zone=late:64k rate=100r/s;
    commerce_limit_zone $binary_remote_addr zone=late2:64k rate=1r/m
                        burst=5;
EOF
    my ($ok, $out) = $t->nginx_test_ok('good');
    ok($ok, 'a valid configuration passes nginx -t') or diag($out);
}

$t->done;
