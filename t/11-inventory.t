#!/usr/bin/perl

# Inventory read API: GET /v1/stores/{s}/inventory/{sku} and
# GET /v1/stores/{s}/inventory?cursor=&count= over inv:{store} hashes.

use strict;
use warnings;

use JSON::PP;
use Test::More;
use lib 't/lib';
use CommerceTest;

my $t = CommerceTest->new;
my $json = JSON::PP->new->allow_nonref;

$t->start_redis;

$t->write_nginx_conf(<<'EOF');
commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;

server {
    listen 127.0.0.1:%%PORT_HTTP%%;

    location ~ ^/v1/stores/(?<store_id>[^/]+)/inventory/(?<sku>[^/]+)$ {
        commerce_inventory_item $store_id $sku;
        commerce_cache_control "public, max-age=1";
    }

    location ~ ^/v1/stores/(?<store_id>[^/]+)/inventory$ {
        commerce_inventory_list $store_id;
        commerce_cache_control "public, max-age=1";
    }

    location ~ ^/small/(?<store_id>[^/]+)$ {
        commerce_inventory_list $store_id;
        commerce_list_default_limit 3;
        commerce_list_max_limit 7;
    }
}
EOF

$t->start_nginx;


sub get { $t->http(GET => @_) }


# A generated JSON body (list, error) may end with one newline; stored
# documents are compared byte for byte elsewhere.
sub lbody {
    my ($r) = @_;
    my $b = $r->{body};
    $b =~ s/\n\z//;
    return $b;
}


sub is_error {
    my ($r, $status, $code, $what) = @_;

    is($r->{status}, $status, "$what: status $status")
        or diag("body: $r->{body} error: " . ($r->{error} // ''));
    like($r->{headers}{'content-type'} // '', qr{^application/json},
         "$what: JSON content type");
    is($r->{headers}{'cache-control'}, 'no-store', "$what: no-store");

    my $e = eval { $json->decode($r->{body}) };
    is(ref $e && $e->{error}, $code, "$what: error code $code");
    ok(ref $e && defined $e->{message}, "$what: message");
}


sub stock {
    my ($sku, $n) = @_;
    my $e = $sku;
    $e =~ s/(["\\])/\\$1/g;
    return qq({"sku":"$e","on_hand":) . (100 + $n) . qq(,"reserved":) . ($n % 5)
           . qq(,"available":) . (100 + $n - $n % 5)
           . qq(,"orderable":true,"version":) . (1000 + $n)
           . qq(,"updated_at":"2025-01-01T00:00:00Z"});
}


# ---- empty store ------------------------------------------------------------

{
    my $r = get('/v1/stores/store-empty/inventory');
    is($r->{status}, 200, 'store without stock: 200');
    is(lbody($r), '{"items":[],"next":null}', 'store without stock: empty');

    is_error(get('/v1/stores/store-empty/inventory/sku-1'), 404, 'not_found',
             'sku of a store without stock');
}


# ---- seed: a big store (hashtable encoding, real cursors) and small ones ----

my (%big, %small, %odd);

$big{sprintf 'SKU-%05d', $_} = undef for 1 .. 600;
$big{$_} = stock($_, length $_) for keys %big;
$small{"sku-$_"} = stock("sku-$_", $_) for 1 .. 5;
%odd = map { $_ => stock($_, 1) } "caf\xc3\xa9", "q\"x\\", 'a:b~c';

my @cmds;
push @cmds, ['HSET', 'inv:store-big', $_, $big{$_}] for keys %big;
push @cmds, ['HSET', 'inv:store-small', $_, $small{$_}] for keys %small;
push @cmds, ['HSET', "inv:st\xc3\xb6re", $_, $odd{$_}] for keys %odd;
push @cmds, ['HSET', 'inv:' . ('S' x 256), 'x', stock('x', 1)];
$t->redis_pipeline(@cmds);


# ---- items ------------------------------------------------------------------

{
    my $r = get('/v1/stores/store-big/inventory/SKU-00042');
    is($r->{status}, 200, 'inventory item: 200');
    is($r->{body}, $big{'SKU-00042'}, 'inventory item: stored value');
    like($r->{headers}{'content-type'}, qr{^application/json}, 'item: JSON');
    like($r->{headers}{etag} // '', qr/^"[0-9a-f]{16}"$/, 'item: ETag');
    is($r->{headers}{'cache-control'}, 'public, max-age=1',
       'item: Cache-Control');
    like($r->{headers}{vary} // '', qr/Accept-Encoding/i, 'item: Vary');

    my $bad = 0;
    for my $sku (sort keys %big) {
        my $r = get("/v1/stores/store-big/inventory/$sku");
        $bad++ unless $r->{status} == 200 && $r->{body} eq $big{$sku};
    }
    is($bad, 0, 'every sku of the big store served exactly');

    for my $sku (sort keys %odd) {
        $r = get('/v1/stores/st%C3%B6re/inventory/'
                 . CommerceTest::uri_escape($sku));
        is($r->{body}, $odd{$sku}, "UTF-8 store, sku '$sku'");
    }

    $r = get('/v1/stores/' . ('S' x 256) . '/inventory/x');
    is($r->{status}, 200, '256-byte store id');

    is_error(get('/v1/stores/store-big/inventory/SKU-99999'), 404,
             'not_found', 'missing sku');
    is_error(get('/v1/stores/nope/inventory/SKU-00001'), 404, 'not_found',
             'missing store');

    is_error(get('/v1/stores/' . ('S' x 257) . '/inventory/x'), 400,
             'invalid_argument', '257-byte store id');
    is_error(get('/v1/stores/store-big/inventory/' . ('K' x 257)), 400,
             'invalid_argument', '257-byte sku');
    is_error(get('/v1/stores/st%01re/inventory/SKU-00001'), 400,
             'invalid_argument', 'store id with %01');
    is_error(get('/v1/stores/store-big/inventory/SKU%2000001'), 400,
             'invalid_argument', 'sku with a space');
    is_error(get('/v1/stores/store-big/inventory/SKU%7F'), 400,
             'invalid_argument', 'sku with DEL');
}


# ---- list -------------------------------------------------------------------

sub page_body {
    my ($store, $skus, $next) = @_;
    return '{"items":[' . join(',', map { $store->{$_} } @$skus)
           . '],"next":' . (defined $next ? $json->encode($next) : 'null')
           . '}';
}


# Follows next until null: every sku exactly once, bodies are the values.
sub walk {
    my ($path, $store, $count, $name) = @_;

    my ($cursor, @seen, $pages);

    while (1) {
        my $q = $path;
        my @args;
        push @args, "count=$count" if defined $count;
        push @args, "cursor=$cursor" if defined $cursor;
        $q .= '?' . join('&', @args) if @args;

        my $r = get($q);
        my $p = $r->{status} == 200 && eval { $json->decode($r->{body}) };

        if (!$p) {
            fail("$name: $q");
            diag("-> $r->{status} $r->{body}");
            return;
        }

        $pages++;

        my @skus = map { $_->{sku} } @{ $p->{items} };

        # count caps the page (HSCAN's COUNT is only a hint)
        if (@skus > ($count // ($path =~ m{^/small/} ? 3 : 50))) {
            fail("$name: page $q holds " . @skus . " items");
            return;
        }

        if (lbody($r) ne page_body($store, \@skus, $p->{next})) {
            fail("$name: page $q is the stored values");
            diag("got: " . substr($r->{body}, 0, 300));
            return;
        }

        push @seen, @skus;

        last unless defined $p->{next};

        if ($p->{next} !~ /^(?:[1-9][0-9]*|[0-9]+-[1-9][0-9]*)$/) {
            fail("$name: next is a cursor");
            diag("next: $p->{next}");
            return;
        }

        $cursor = $p->{next};

        if ($pages > 1000) {
            fail("$name: no end");
            return;
        }
    }

    my %n;
    $n{$_}++ for @seen;
    my @dup = grep { $n{$_} > 1 } sort keys %n;
    my @missing = grep { !$n{$_} } sort keys %$store;

    ok(!@dup && !@missing && @seen == keys %$store,
       "$name: every sku exactly once (" . @seen . " in $pages pages)")
        or diag("dup: @dup[0 .. ($#dup > 9 ? 9 : $#dup)] missing: "
                . "@missing[0 .. ($#missing > 9 ? 9 : $#missing)]");

    return $pages;
}

walk('/v1/stores/store-big/inventory', \%big, 7, 'big store, count=7');
walk('/v1/stores/store-big/inventory', \%big, undef, 'big store, default');
walk('/v1/stores/store-big/inventory', \%big, 200, 'big store, count=200');
walk('/v1/stores/store-big/inventory', \%big, 1, 'big store, count=1');
walk('/small/store-big', \%big, undef, 'big store, default count 3');
walk('/v1/stores/store-small/inventory', \%small, undef, 'small store');
walk('/v1/stores/store-small/inventory', \%small, 2,
     'small store, count=2: pages of 2 within its one HSCAN batch');
walk('/v1/stores/store-big/inventory', \%big, 5, 'big store, count=5');
walk('/v1/stores/st%C3%B6re/inventory', \%odd, 2, 'UTF-8 store');

{
    my $r = get('/v1/stores/store-small/inventory?cursor=0&count=50');
    is($r->{status}, 200, 'explicit cursor=0');
    my $p = eval { $json->decode($r->{body}) };
    is(scalar @{ $p->{items} // [] }, 5, 'small store: all in one page');
    is($p->{next}, undef, 'small store: next null') if $p;

    $r = get('/v1/stores/store-big/inventory?count=10');
    like($r->{headers}{etag} // '', qr/^"[0-9a-f]{16}"$/, 'list: ETag');
    is($r->{headers}{'cache-control'}, 'public, max-age=1',
       'list: Cache-Control');
    like($r->{headers}{vary} // '', qr/Accept-Encoding/i, 'list: Vary');

    $r = get('/small/store-big?count=7');
    is($r->{status}, 200, 'count = commerce_list_max_limit');
    is_error(get('/small/store-big?count=8'), 400, 'invalid_argument',
             'count > commerce_list_max_limit');
}

for my $q ('count=0', 'count=-1', 'count=abc', 'count=201', 'count=',
           'count=1.5', 'cursor=', 'cursor=abc', 'cursor=-1', 'cursor=1x',
           'cursor=%2B1', 'cursor=18446744073709551616',
           'cursor=0&count=0')
{
    is_error(get("/v1/stores/store-big/inventory?$q"), 400,
             'invalid_argument', "inventory list ?$q");
}

is_error(get('/v1/stores/' . ('S' x 257) . '/inventory'), 400,
         'invalid_argument', 'list: 257-byte store id');
is_error(get('/v1/stores/a%20b/inventory'), 400, 'invalid_argument',
         'list: store id with a space');

$t->done;
