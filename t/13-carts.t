#!/usr/bin/perl

# Carts: POST /v1/carts, GET/DELETE /v1/carts/{id}, PUT/DELETE
# /v1/carts/{id}/items/{sku} against a read model in Redis (inv:{store}
# stock values with their prices); every change one script, atomic.  The
# owner is the sub of a JWT (commerce_jwt, tokens that commerce-jwt signs
# with a key of t/fixtures/jwt), or commerce_cart_owner's value.

use strict;
use warnings;

use File::Copy qw(copy);
use IPC::Open3 qw(open3);
use JSON::PP;
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);
use lib 't/lib';
use CommerceTest;

my $t = CommerceTest->new;
my $json = JSON::PP->new->allow_nonref->canonical;

my $fix = "$CommerceTest::REPO/t/fixtures/jwt";
my $tool = ($ENV{COMMERCE_BUILD} // "$CommerceTest::REPO/build")
           . '/bin/commerce-jwt';
BAIL_OUT("$tool is missing: make workers") unless -x $tool;
copy("$fix/jwks.json", $t->dir . '/keys.json') or die $!;

$t->start_redis;

my $CONF = <<'EOF';
commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;
commerce_redis_timeout 1s;
# for the checkout of the shipped locations: no broker there
commerce_kafka_brokers 127.0.0.1:%%PORT_NOBROKER%%;

commerce_jwt_keys_file %%TESTDIR%%/keys.json;
commerce_jwt_issuer https://issuer.test;
commerce_jwt_audience commerce;

# per user: 3 at once, then one a minute
commerce_limit_zone $commerce_jwt_sub zone=carts_strict:1m rate=1r/m burst=2;
# the shipped locations' zone
commerce_limit_zone $commerce_jwt_sub zone=carts:1m rate=1000r/s burst=1000;

server {
    listen 127.0.0.1:%%PORT_HTTP%%;

    # the owner: the token's sub (commerce_cart_owner's default)
    commerce_jwt on;
    commerce_cart_max_quantity 10;
    commerce_cart_max_items 3;

    location = /v1/carts {
        commerce_cart;
    }

    location ~ ^/v1/carts/(?<cart_id>[^/]+)$ {
        commerce_cart $cart_id;
    }

    location ~ ^/v1/carts/(?<cart_id>[^/]+)/items/(?<sku>[^/]+)$ {
        commerce_cart $cart_id $sku;
    }

    # a short TTL and many lines, the defaults of quantity
    location = /short/carts {
        commerce_cart;
        commerce_cart_ttl 1s;
    }

    location ~ ^/wide/carts/(?<cart_id>[^/]+)/items/(?<sku>[^/]+)$ {
        commerce_cart $cart_id $sku;
        commerce_cart_max_items 1000;
        commerce_cart_max_quantity 10000;
    }

    # the owner from a header instead
    location = /hdr/carts {
        commerce_jwt off;
        commerce_cart_owner $http_x_test_sub;
        commerce_cart;
    }

    location ~ ^/hdr/carts/(?<cart_id>[^/]+)$ {
        commerce_jwt off;
        commerce_cart_owner $http_x_test_sub;
        commerce_cart $cart_id;
    }

    location ~ ^/limited/carts/(?<cart_id>[^/]+)$ {
        commerce_limit zone=carts_strict;
        commerce_cart $cart_id;
    }
}

# the shipped locations, as conf/nginx.conf includes them
server {
    listen 127.0.0.1:%%PORT_SHIPPED%%;

    include %%CONF%%/commerce-locations.conf;
    include %%CONF%%/commerce-carts.conf;
}
EOF

$CONF =~ s/%%CONF%%/$CommerceTest::REPO\/conf/g;

$t->write_nginx_conf($CONF);
$t->start_nginx;


# ---- the read model ---------------------------------------------------------

sub stock {
    my ($sku, %o) = @_;
    my $price = exists $o{price} ? $o{price} : '"price":{"amount":"'
        . ($o{amount} // '1.00') . '","currency":"' . ($o{cur} // 'EUR')
        . '"}';
    $price = '"price":null' unless defined $price;
    my $avail = $o{available} // 5;
    my $orderable = $avail > 0 ? 'true' : 'false';
    return qq({"sku":"$sku","on_hand":$avail,"reserved":0,)
         . qq("available":$avail,"orderable":$orderable,"version":1,)
         . qq("updated_at":"2026-12-03T11:02:39.226Z",$price});
}

my @seed = (
    ['HSET', 'inv:store-1',
     'SKU-A', stock('SKU-A', amount => '238.07'),
     'SKU-B', stock('SKU-B', amount => '0.10'),
     'SKU-C', stock('SKU-C', amount => '19.99'),
     'SKU-D', stock('SKU-D', amount => '5.00'),
     'SKU-OUT', stock('SKU-OUT', available => 0),
     'SKU-NOPRICE', stock('SKU-NOPRICE', price => undef),
     'SKU-BAD', 'not json',
     (map { ("P$_", stock("P$_", amount => "$_.01")) } 1 .. 10)],
    ['HSET', 'inv:store-jp', 'JP-1', stock('JP-1', amount => '1200.00',
                                           cur => 'JPY')],
    ['HSET', 'inv:store-kw', 'KW-1', stock('KW-1', amount => '1.25',
                                           cur => 'KWD'),
     'KW-2', stock('KW-2', amount => '0.01', cur => 'KWD')],
);

$t->redis_pipeline(@seed);


# ---- helpers ----------------------------------------------------------------

# a token of that sub, made once (before a fork)
my %token;

sub token {
    my ($sub) = @_;

    return $token{$sub} //= do {
        my $claims = $json->encode({ iss => 'https://issuer.test',
                                     aud => 'commerce', sub => $sub,
                                     exp => time + 3600 });
        my $pid = open3(my $in, my $out, undef, $tool, 'sign', '--key',
                        "$fix/keys/ec256.jwk", '--claims', $claims);
        close $in;
        my $tok = do { local $/; <$out> } // '';
        waitpid($pid, 0);
        die "commerce-jwt sign failed: $?" if $?;
        chomp $tok;
        $tok;
    };
}

# a request as that user (a token of that sub), or without a token
sub req {
    my ($method, $path, $sub, %h) = @_;
    $h{Authorization} = 'Bearer ' . token($sub) if defined $sub;
    return $t->http($method => $path, %h);
}

sub body_of {
    my ($r) = @_;
    return eval { $json->decode($r->{body}) };
}

sub is_error {
    my ($r, $status, $code, $what) = @_;

    is($r->{status}, $status, "$what: status $status")
        or diag("body: $r->{body}");
    like($r->{headers}{'content-type'} // '', qr{^application/json},
         "$what: JSON");
    my $e = body_of($r);
    is($e && $e->{error}, $code, "$what: error $code")
        or diag("body: $r->{body}");
    ok($e && length($e->{message} // ''), "$what: with a message");
}

sub create {
    my ($sub, $store, $path) = @_;
    my $r = req(POST => $path // '/v1/carts', $sub,
                -body => qq({"store_id":"$store"}),
                'Content-Type' => 'application/json');
    is($r->{status}, 201, "create in $store: 201") or diag($r->{body});
    my $c = body_of($r);
    return ($c && $c->{id}, $r);
}

sub put_item {
    my ($id, $sku, $q, $sub, %h) = @_;
    return req(PUT => "/v1/carts/$id/items/$sku", $sub // 'alice',
               -body => ref $q ? $q->[0] : qq({"quantity":$q}), %h);
}

sub lines {
    my ($c) = @_;
    return { map { $_->{sku} => $_->{quantity} } @{ $c->{items} } };
}


# ---- create -----------------------------------------------------------------

{
    my $r = req(POST => '/v1/carts', undef, -body => '{"store_id":"store-1"}');
    is_error($r, 401, 'missing_token', 'no token');
    like($r->{headers}{'www-authenticate'} // '', qr/^Bearer/,
         'no token: a Bearer challenge');

    $r = req(POST => '/v1/carts', undef, -body => '{"store_id":"store-1"}',
             Authorization => 'Bearer x.y.z');
    is_error($r, 401, 'malformed_token', 'a bad token');

    $r = $t->http(POST => '/hdr/carts', -body => '{"store_id":"store-1"}');
    is_error($r, 401, 'unauthenticated',
             'commerce_cart_owner empty: unauthenticated');

    my %bad = (
        'not JSON'       => ['{"store_id":', 400, 'invalid_json'],
        'empty body'     => ['', 400, 'invalid_json'],
        'an array'       => ['["store-1"]', 400, 'not_an_object'],
        'key twice'      => ['{"store_id":"a","store_id":"b"}', 400,
                             'duplicate_key'],
        'no store_id'    => ['{}', 400, 'invalid_field'],
        'store_id 7'     => ['{"store_id":7}', 400, 'invalid_field'],
        'store_id space' => ['{"store_id":"a b"}', 400, 'invalid_field'],
        'extra field'    => ['{"store_id":"store-1","x":1}', 400,
                             'unknown_field'],
        'unknown store'  => ['{"store_id":"store-none"}', 422,
                             'unknown_store'],
    );

    for my $what (sort keys %bad) {
        my ($body, $status, $code) = @{ $bad{$what} };
        is_error(req(POST => '/v1/carts', 'alice', -body => $body),
                 $status, $code, "create: $what");
    }

    is_error(req(POST => '/v1/carts', 'alice',
                 -body => '{"store_id":"' . ('x' x 5000) . '"}'),
             413, 'body_too_large', 'create: body over 4096 bytes');

    is(scalar @{ $t->redis_cmd('KEYS', 'cart:*') }, 0,
       'no cart from a refused request');

    my ($id, $res) = create('alice', 'store-1');
    like($id, qr/^[0-9a-f]{32}\z/, 'a cart id: 32 hex digits');
    is($res->{headers}{location}, "/v1/carts/$id", 'Location of the cart');
    is($res->{headers}{etag}, '"1"', 'ETag: version 1');
    is($res->{headers}{'cache-control'}, 'no-store', 'no-store');
    is($res->{body},
       qq({"id":"$id","store_id":"store-1","version":1,"items":[],)
       . qq("total":null}), 'an empty cart');

    my %h = @{ $t->redis_cmd('HGETALL', "cart:$id") };
    is_deeply(\%h, { _owner => 'alice', _store => 'store-1',
                     _version => 1 }, 'cart:{id} in Redis');
    my $pttl = $t->redis_cmd('PTTL', "cart:$id");
    ok($pttl > 7 * 86400 * 1000 - 60_000 && $pttl <= 7 * 86400 * 1000,
       "a TTL of 7 days ($pttl ms)");

    my ($id2) = create('alice', 'store-1');
    isnt($id2, $id, 'each cart its own id');
}


# ---- lines, prices, totals --------------------------------------------------

my ($cart) = create('alice', 'store-1');

{
    my $r = req(GET => "/v1/carts/$cart", 'alice');
    is($r->{status}, 200, 'GET: 200');
    is(body_of($r)->{version}, 1, 'GET: version 1');

    $r = put_item($cart, 'SKU-A', 2);
    is($r->{status}, 200, 'PUT SKU-A 2: 200') or diag($r->{body});
    is($r->{headers}{etag}, '"2"', 'PUT: ETag "2"');
    is($r->{body},
       qq({"id":"$cart","store_id":"store-1","version":2,"items":[)
       . qq({"sku":"SKU-A","quantity":2,"orderable":true,)
       . qq("unit_price":{"amount":"238.07","currency":"EUR",)
       . qq("amount_minor":23807},"line_total":{"amount":"476.14",)
       . qq("currency":"EUR","amount_minor":47614}}],)
       . qq("total":{"amount":"476.14","currency":"EUR",)
       . qq("amount_minor":47614}}), 'PUT: the cart priced');

    $r = put_item($cart, 'SKU-B', 3);
    my $c = body_of($r);
    is_deeply(lines($c), { 'SKU-A' => 2, 'SKU-B' => 3 }, 'two lines');
    is($c->{items}[1]{line_total}{amount}, '0.30', '3 x 0.10 = 0.30');
    is($c->{total}{amount}, '476.44', 'total 476.44, exact');
    is($c->{total}{amount_minor}, 47644, 'total in minor units');

    $r = req(GET => "/v1/carts/$cart", 'alice');
    is($r->{headers}{etag}, '"3"', 'GET: the version as ETag');
    is($r->{body}, $r->{body}, 'GET: the same cart');
    is_deeply(lines(body_of($r)), { 'SKU-A' => 2, 'SKU-B' => 3 },
              'GET: both lines');

    $r = put_item($cart, 'SKU-A', 5);
    is_deeply(lines(body_of($r)), { 'SKU-A' => 5, 'SKU-B' => 3 },
              'PUT sets the quantity, it does not add');
}


# ---- the rules --------------------------------------------------------------

{
    my %q = (
        'quantity 11 (max 10)' => ['{"quantity":11}', 422,
                                   'quantity_out_of_range'],
        'quantity -1'          => ['{"quantity":-1}', 422,
                                   'quantity_out_of_range'],
        'quantity 1.5'         => ['{"quantity":1.5}', 400, 'invalid_field'],
        'quantity "2"'         => ['{"quantity":"2"}', 400, 'invalid_field'],
        'quantity true'        => ['{"quantity":true}', 400, 'invalid_field'],
        'no quantity'          => ['{}', 400, 'invalid_field'],
        'extra field'          => ['{"quantity":1,"sku":"x"}', 400,
                                   'unknown_field'],
        'not JSON'             => ['quantity=1', 400, 'invalid_json'],
    );

    for my $what (sort keys %q) {
        my ($body, $status, $code) = @{ $q{$what} };
        is_error(put_item($cart, 'SKU-C', [$body]), $status, $code,
                 "PUT $what");
    }

    is_error(put_item($cart, 'SKU-NONE', 1), 422, 'unknown_sku',
             'PUT a sku the store lacks');
    is_error(put_item($cart, 'SKU-OUT', 1), 422, 'sku_not_orderable',
             'PUT a sku out of stock');
    is_error(put_item($cart, 'SKU-NOPRICE', 1), 422, 'sku_not_orderable',
             'PUT a sku without a price');
    is_error(put_item($cart, 'SKU-BAD', 1), 422, 'sku_not_orderable',
             'PUT a sku whose stock value is not JSON');
    is_error(put_item($cart, 'JP-1', 1), 422, 'unknown_sku',
             "PUT another store's sku");
    is_error(put_item($cart, 'a%20b', 1), 400, 'invalid_sku',
             'PUT a sku with a space');

    my $r = put_item($cart, 'SKU-A', 10);
    is($r->{status}, 200, 'quantity 10 = max: 200');

    $r = put_item($cart, 'SKU-C', 1);
    is(scalar @{ body_of($r)->{items} }, 3, 'a third line (max 3)');

    is_error(put_item($cart, 'SKU-D', 1), 422, 'too_many_items',
             'a fourth line');

    $r = put_item($cart, 'SKU-C', 4);
    is($r->{status}, 200, 'a line already there changes at max lines');

    my $v = body_of($r)->{version};
    is($t->redis_cmd('HGET', "cart:$cart", '_version'), $v,
       'refusals changed nothing: the version is the last 200\'s');

    # quantity 0 removes; on a sku not in the cart it changes nothing
    $r = put_item($cart, 'SKU-C', 0);
    is($r->{status}, 200, 'PUT 0: 200');
    is_deeply(lines(body_of($r)), { 'SKU-A' => 10, 'SKU-B' => 3 },
              'PUT 0 removes the line');
    is(body_of($r)->{version}, $v + 1, 'a removal is a change');

    $r = put_item($cart, 'SKU-D', 0);
    is($r->{status}, 200, 'PUT 0 of a sku not in the cart: 200');
    is(body_of($r)->{version}, $v + 1, '... and no change');

    $r = req(DELETE => "/v1/carts/$cart/items/SKU-B", 'alice');
    is($r->{status}, 200, 'DELETE a line: 200');
    is_deeply(lines(body_of($r)), { 'SKU-A' => 10 }, 'the line is gone');
    is(body_of($r)->{version}, $v + 2, 'DELETE a line: a change');

    is_error(req(DELETE => "/v1/carts/$cart/items/SKU-B", 'alice'), 404,
             'item_not_found', 'DELETE a line not in the cart');
    is_error(req(DELETE => "/v1/carts/$cart/items/SKU-NONE", 'alice'), 404,
             'item_not_found', 'DELETE a sku the store lacks');
}


sub cart_keys { scalar @{ $t->redis_cmd('KEYS', 'cart:*') } }

# the scripts Redis ran so far (a request refused by nginx runs none)
sub scripts_run {
    my $info = $t->redis_cmd('INFO', 'commandstats');
    my $n = 0;
    $n += $1 while $info =~ /^cmdstat_eval(?:sha)?:calls=(\d+)/mg;
    return $n;
}


# ---- owners -----------------------------------------------------------------

{
    my $before = $t->redis_cmd('HGET', "cart:$cart", '_version');
    my $keys = cart_keys();
    my $runs;

    is_error(req(GET => "/v1/carts/$cart", 'bob'), 404, 'cart_not_found',
             "GET another owner's cart");
    is_error(put_item($cart, 'SKU-A', 1, 'bob'), 404, 'cart_not_found',
             "PUT into another owner's cart");
    is_error(req(DELETE => "/v1/carts/$cart/items/SKU-A", 'bob'), 404,
             'cart_not_found', "DELETE a line of another owner's cart");
    is_error(req(DELETE => "/v1/carts/$cart", 'bob'), 404, 'cart_not_found',
             "DELETE another owner's cart");
    $runs = scripts_run();
    is_error(req(GET => "/v1/carts/$cart", undef), 401, 'missing_token',
             'GET without a token');

    is($t->redis_cmd('HGET', "cart:$cart", '_version'), $before,
       "another owner changed nothing");

    is_error(req(GET => '/v1/carts/not-a-cart-id', 'alice'), 404,
             'cart_not_found', 'GET a malformed id');
    is_error(req(GET => '/v1/carts/' . uc($cart), 'alice'), 404,
             'cart_not_found', 'GET the id in upper case');
    is_error($t->http(POST => '/hdr/carts', 'X-Test-Sub' => '',
                      -body => '{"store_id":"store-1"}'),
             401, 'unauthenticated', 'POST with an empty owner');
    is_error($t->http(DELETE => "/hdr/carts/$cart"), 401, 'unauthenticated',
             'DELETE with no owner');
    is_error(req(DELETE => "/v1/carts/$cart", undef), 401, 'missing_token',
             'DELETE without a token');
    is_error(put_item($cart, 'a%20b', 1), 400, 'invalid_sku',
             'PUT a sku with a space');
    is(scripts_run(), $runs, 'what nginx refuses sends nothing to Redis');

    is_error(req(GET => '/v1/carts/' . ('0' x 32), 'alice'), 404,
             'cart_not_found', 'GET a cart that does not exist');
    is(scripts_run(), $runs + 1, '... that one asks Redis');

    is(cart_keys(), $keys, 'no request refused here wrote a cart');
}


# ---- the owner: the token's sub, or commerce_cart_owner -----------------------

{
    my $r = $t->http(POST => '/hdr/carts', 'X-Test-Sub' => 'alice',
                     -body => '{"store_id":"store-1"}');
    is($r->{status}, 201, 'commerce_cart_owner $http_x_test_sub: 201');
    my $id = body_of($r)->{id};
    is($t->redis_cmd('HGET', "cart:$id", '_owner'), 'alice',
       'the owner is the header\'s value');
    is(req(GET => "/v1/carts/$id", 'alice')->{status}, 200,
       'the token of sub alice sees it');
    is_error(req(GET => "/v1/carts/$id", 'bob'), 404, 'cart_not_found',
             'the token of sub bob does not');
    is_error($t->http(GET => "/hdr/carts/$id", 'X-Test-Sub' => 'bob'), 404,
             'cart_not_found', 'nor the header bob');
}


# ---- a rate limit per user (commerce_limit keyed by $commerce_jwt_sub) ---------

{
    my ($id) = create('ivan', 'store-1');
    my @st = map { req(GET => "/limited/carts/$id", 'ivan')->{status} } 1 .. 4;
    is_deeply(\@st, [200, 200, 200, 429], 'ivan: burst 2, then 429');
    my ($other) = create('judy', 'store-1');
    is(req(GET => "/limited/carts/$other", 'judy')->{status}, 200,
       'judy, from the same address, still passes');
    is(req(GET => "/limited/carts/$id", 'ivan')->{status}, 429,
       'ivan is still limited');
}


# ---- methods ----------------------------------------------------------------

{
    my $keys = cart_keys();
    my $v = $t->redis_cmd('HGET', "cart:$cart", '_version');
    my $runs = scripts_run();

    my $r = req(GET => '/v1/carts', 'alice');
    is_error($r, 405, 'method_not_allowed', 'GET /v1/carts');
    is($r->{headers}{allow}, 'POST', 'Allow: POST');

    $r = req(POST => "/v1/carts/$cart", 'alice', -body => '{}');
    is_error($r, 405, 'method_not_allowed', 'POST a cart');
    is($r->{headers}{allow}, 'GET, HEAD, DELETE', 'Allow of a cart');

    $r = req(GET => "/v1/carts/$cart/items/SKU-A", 'alice');
    is_error($r, 405, 'method_not_allowed', 'GET a line');
    is($r->{headers}{allow}, 'PUT, DELETE', 'Allow of a line');

    for my $m (qw(PUT PATCH DELETE)) {
        is_error(req($m => '/v1/carts', 'alice',
                     -body => '{"store_id":"store-1"}'),
                 405, 'method_not_allowed', "$m /v1/carts");
    }
    is_error(req(PUT => "/v1/carts/$cart", 'alice', -body => '{}'), 405,
             'method_not_allowed', 'PUT a cart');
    is_error(req(POST => "/v1/carts/$cart/items/SKU-A", 'alice',
                 -body => '{"quantity":1}'),
             405, 'method_not_allowed', 'POST a line');

    is(scripts_run(), $runs, '405s send nothing to Redis');
    is(cart_keys(), $keys, '405s wrote no cart');
    is($t->redis_cmd('HGET', "cart:$cart", '_version'), $v,
       '405s changed no cart');

    $r = req(HEAD => "/v1/carts/$cart", 'alice');
    is($r->{status}, 200, 'HEAD a cart: 200');
    is($r->{body}, '', 'HEAD: no body');
    is($r->{headers}{etag}, '"' . $t->redis_cmd('HGET', "cart:$cart",
                                                '_version') . '"',
       'HEAD: the ETag');
}


# ---- If-Match ---------------------------------------------------------------

{
    my $v = $t->redis_cmd('HGET', "cart:$cart", '_version');
    my $old = $v - 1;

    is_error(put_item($cart, 'SKU-A', 1, 'alice', 'If-Match' => qq("$old")),
             412, 'precondition_failed', 'PUT If-Match an old version');
    is($t->redis_cmd('HGET', "cart:$cart", 'i:SKU-A'), 10,
       '412: the line unchanged');
    is_error(put_item($cart, 'SKU-A', 1, 'alice', 'If-Match' => qq(W/"$v")),
             412, 'precondition_failed', 'PUT If-Match a weak tag');
    is_error(put_item($cart, 'SKU-A', 1, 'alice', 'If-Match' => 'bogus'),
             412, 'precondition_failed', 'PUT If-Match not a tag');
    is_error(req(DELETE => "/v1/carts/$cart", 'alice',
                 'If-Match' => qq("$old")),
             412, 'precondition_failed', 'DELETE If-Match an old version');
    is_error(req(GET => "/v1/carts/$cart", 'alice', 'If-Match' => qq("$old")),
             412, 'precondition_failed', 'GET If-Match an old version');

    my $r = put_item($cart, 'SKU-A', 1, 'alice', 'If-Match' => qq("$v"));
    is($r->{status}, 200, 'PUT If-Match the version: 200');
    is($r->{headers}{etag}, '"' . ($v + 1) . '"', '... the new ETag');

    $r = put_item($cart, 'SKU-A', 2, 'alice',
                  'If-Match' => qq("$old", "@{[ $v + 1 ]}"));
    is($r->{status}, 200, 'If-Match a list naming the version: 200');

    $r = put_item($cart, 'SKU-A', 3, 'alice', 'If-Match' => '*');
    is($r->{status}, 200, 'If-Match *: 200');

    is_error(put_item('f' x 32, 'SKU-A', 3, 'alice', 'If-Match' => '*'),
             404, 'cart_not_found', 'If-Match * on no cart');

    # the race If-Match is for: of clients that read one version, one wins
    $v = $t->redis_cmd('HGET', "cart:$cart", '_version');
    my @pids;
    for my $i (1 .. 8) {
        pipe(my $rd, my $wr) or die;
        my $pid = $t->fork_child(sub {
            close $rd;
            my $x = put_item($cart, 'SKU-A', $i, 'alice',
                             'If-Match' => qq("$v"));
            print {$wr} "$x->{status}\n";
            close $wr;
        });
        close $wr;
        push @pids, [$pid, $rd];
    }
    my %st;
    for (@pids) {
        my ($pid, $rd) = @$_;
        my $s = <$rd> // 'none';
        chomp $s;
        $st{$s}++;
        waitpid $pid, 0;
    }
    is_deeply(\%st, { 200 => 1, 412 => 7 },
              '8 PUTs If-Match one version: one 200, seven 412');
    is($t->redis_cmd('HGET', "cart:$cart", '_version'), $v + 1,
       '... one change');
}


# ---- prices from the read model, now ----------------------------------------

{
    my ($id) = create('carol', 'store-1');
    put_item($id, 'SKU-A', 1, 'carol');
    put_item($id, 'SKU-C', 2, 'carol');

    $t->redis_cmd('HSET', 'inv:store-1', 'SKU-A',
                  stock('SKU-A', amount => '200.00'));
    my $c = body_of(req(GET => "/v1/carts/$id", 'carol'));
    is($c->{items}[0]{unit_price}{amount}, '200.00', 'a new price shows');
    is($c->{total}{amount}, '239.98', 'the total with it: 200.00 + 39.98');

    $t->redis_cmd('HSET', 'inv:store-1', 'SKU-C',
                  stock('SKU-C', amount => '19.99', available => 0));
    $c = body_of(req(GET => "/v1/carts/$id", 'carol'));
    is($c->{items}[1]{orderable}, JSON::PP::false,
       'a line out of stock since: orderable false');
    is($c->{total}{amount}, '239.98', '... still priced');

    $t->redis_cmd('HDEL', 'inv:store-1', 'SKU-C');
    $c = body_of(req(GET => "/v1/carts/$id", 'carol'));
    is($c->{items}[1]{unit_price}, undef, 'a sku gone from the store: '
       . 'no price');
    is($c->{items}[1]{line_total}, undef, '... no line total');
    is($c->{total}, undef, '... and no total');
    is($c->{items}[1]{quantity}, 2, '... the line is kept');

    $t->redis_cmd('HSET', 'inv:store-1', 'SKU-C',
                  stock('SKU-C', amount => '19.99'));
    $t->redis_cmd('HSET', 'inv:store-1', 'SKU-A',
                  stock('SKU-A', amount => '238.07'));

    # currencies by their ISO 4217 exponent
    my ($jp) = create('carol', 'store-jp');
    $c = body_of(put_item($jp, 'JP-1', 3, 'carol'));
    is_deeply($c->{total}, { amount => '3600', currency => 'JPY',
                             amount_minor => 3600 },
              'JPY: no decimals, 3 x 1200 = 3600');

    my ($kw) = create('carol', 'store-kw');
    put_item($kw, 'KW-1', 3, 'carol');
    $c = body_of(put_item($kw, 'KW-2', 7, 'carol'));
    is_deeply($c->{items}[0]{unit_price}, { amount => '1.250',
                                            currency => 'KWD',
                                            amount_minor => 1250 },
              'KWD: three decimals');
    is_deeply($c->{total}, { amount => '3.820', currency => 'KWD',
                             amount_minor => 3820 },
              'KWD: 3 x 1.250 + 7 x 0.010 = 3.820');
}


# ---- TTL --------------------------------------------------------------------

{
    my ($id) = create('dave', 'store-1');

    $t->redis_cmd('PEXPIRE', "cart:$id", 100_000);
    req(GET => "/v1/carts/$id", 'dave');
    ok($t->redis_cmd('PTTL', "cart:$id") <= 100_000,
       'a GET does not refresh the TTL');

    put_item($id, 'SKU-A', 1, 'dave');
    ok($t->redis_cmd('PTTL', "cart:$id") > 7 * 86400 * 1000 - 60_000,
       'a PUT refreshes the TTL to 7 days');

    $t->redis_cmd('PEXPIRE', "cart:$id", 100_000);
    req(DELETE => "/v1/carts/$id/items/SKU-A", 'dave');
    ok($t->redis_cmd('PTTL', "cart:$id") > 7 * 86400 * 1000 - 60_000,
       'a DELETE of a line refreshes the TTL');

    $t->redis_cmd('PEXPIRE', "cart:$id", 100_000);
    is_error(put_item($id, 'SKU-NONE', 1, 'dave'), 422, 'unknown_sku',
             'a refused PUT');
    ok($t->redis_cmd('PTTL', "cart:$id") <= 100_000,
       '... does not refresh the TTL');

    my ($short) = create('dave', 'store-1', '/short/carts');
    my $pttl = $t->redis_cmd('PTTL', "cart:$short");
    ok($pttl > 0 && $pttl <= 1000, "commerce_cart_ttl 1s: PTTL $pttl");
    sleep 1.3;
    is_error(req(GET => "/v1/carts/$short", 'dave'), 404, 'cart_not_found',
             'an expired cart is gone');
}


# ---- DELETE the cart --------------------------------------------------------

{
    my ($id) = create('erin', 'store-1');
    put_item($id, 'SKU-A', 1, 'erin');

    my $r = req(DELETE => "/v1/carts/$id", 'erin', 'If-Match' => '"2"');
    is($r->{status}, 204, 'DELETE the cart: 204');
    is($r->{body}, '', '204: no body');
    is($t->redis_cmd('EXISTS', "cart:$id"), 0, 'the hash is gone');
    is_error(req(GET => "/v1/carts/$id", 'erin'), 404, 'cart_not_found',
             'GET a deleted cart');
    is_error(req(DELETE => "/v1/carts/$id", 'erin'), 404, 'cart_not_found',
             'DELETE it again');
}


# ---- the script flushed (Redis restarted): EVAL once, then EVALSHA ----------

{
    my ($id) = create('frank', 'store-1');
    $t->redis_cmd('SCRIPT', 'FLUSH');
    my $r = put_item($id, 'SKU-A', 1, 'frank');
    is($r->{status}, 200, 'after SCRIPT FLUSH: 200') or diag($r->{body});
    is_deeply(lines(body_of($r)), { 'SKU-A' => 1 }, '... the change made');
}


# ---- atomicity under concurrent updates -------------------------------------

{
    my ($id) = create('gina', 'store-1');

    # 8 clients, 40 PUTs each over 10 skus, at most 3 lines
    my $clients = 8;
    my $each = 40;
    my @kids;

    for my $k (1 .. $clients) {
        pipe(my $rd, my $wr) or die;
        my $pid = $t->fork_child(sub {
            close $rd;
            srand($k * 7919);
            for my $n (1 .. $each) {
                my $sku = 'P' . (1 + int rand 10);
                my $q = int rand 4;     # 0 removes
                my $r = put_item($id, $sku, $q, 'gina');
                my $e = body_of($r) // {};
                my $lines = $e->{items} ? scalar @{ $e->{items} } : -1;
                print {$wr} join(' ', $r->{status}, $sku, $q, $lines,
                                 $e->{version} // 0, $e->{error} // '-'),
                            "\n";
            }
            close $wr;
        });
        close $wr;
        push @kids, [$pid, $rd];
    }

    # meanwhile, the hash read from Redis itself
    my $max_seen = 0;
    my $running = 1;
    while ($running) {
        my $n = $t->redis_cmd('HLEN', "cart:$id") - 3;
        $max_seen = $n if $n > $max_seen;
        $running = grep { waitpid($_->[0], POSIX::WNOHANG()) == 0 } @kids;
        sleep 0.002;
    }

    my (%status, %versions, %set_versions, %codes);
    my $max_answer = 0;
    my $set_dups = 0;

    for (@kids) {
        my $rd = $_->[1];
        while (my $line = <$rd>) {
            my ($st, $sku, $q, $lines, $v, $err) = split ' ', $line;
            $status{$st}++;
            $codes{$err}++ if $st != 200;
            $max_answer = $lines if $lines > $max_answer;
            next unless $st == 200;
            $versions{$v} = 1;
            # a PUT of 1..3 answered 200 is a change: a version of its own
            $set_dups++ if $q > 0 && $set_versions{$v}++;
        }
    }

    my $total = $clients * $each;
    is(($status{200} // 0) + ($status{422} // 0), $total,
       "$total PUTs: each 200 or 422") or diag(explain \%status);
    is_deeply([keys %codes], [ (%codes ? 'too_many_items' : ()) ],
              'every 422 is too_many_items');
    ok($max_answer <= 3, "no answer shows more than 3 lines ($max_answer)");
    ok($max_seen <= 3, "Redis never held more than 3 lines ($max_seen)");

    my %h = @{ $t->redis_cmd('HGETALL', "cart:$id") };
    my @skus = grep { /^i:/ } keys %h;
    ok(@skus <= 3, 'at the end, at most 3 lines (' . scalar(@skus) . ')');
    ok(!grep({ $h{$_} < 1 || $h{$_} > 3 } @skus),
       'every line with a quantity from 1 to 3');

    # every change raised the version by one and answered with it (a PUT 0
    # of a sku not in the cart changes nothing and answers the version it
    # found): the answers' versions are 2..final, each change's its own
    my $final = $h{_version};
    is($set_dups, 0, 'no two PUTs that set a line answered one version');
    delete $versions{1};
    is_deeply([sort { $a <=> $b } keys %versions], [2 .. $final],
              "the answers name every version from 2 to $final: no change "
              . 'lost or merged');

    my $final_c = body_of(req(GET => "/v1/carts/$id", 'gina'));
    is_deeply(lines($final_c), { map { substr($_, 2) => $h{$_} } @skus },
              'GET shows what Redis holds');
}

# ---- many lines: a wider location -------------------------------------------

{
    my ($id) = create('hank', 'store-1');
    my $c;
    for my $i (1 .. 10) {
        $c = body_of(req(PUT => "/wide/carts/$id/items/P$i", 'hank',
                         -body => '{"quantity":10000}'));
    }
    is(scalar @{ $c->{items} }, 10, 'commerce_cart_max_items 1000: 10 lines');
    is_deeply([map { $_->{sku} } @{ $c->{items} }],
              [sort map { "P$_" } 1 .. 10], 'lines sorted by sku');
    # sum of (i + 0.01) * 10000 for i = 1..10 = 550000 + 1000
    is($c->{total}{amount}, '551000.00', 'a total of 10000 x each, exact');
}


# ---- the shipped locations (conf/commerce-carts.conf) ---------------------------

{
    my %p = (-port => $t->port('SHIPPED'));

    my $r = req(POST => '/v1/carts', 'kate', %p,
                -body => '{"store_id":"store-1"}');
    is($r->{status}, 201, 'shipped: POST /v1/carts 201');
    like($r->{headers}{location} // '', qr{^/v1/carts/[0-9a-f]{32}\z},
         'shipped: Location /v1/carts/{id}');
    my $id = body_of($r)->{id};

    $r = req(PUT => "/v1/carts/$id/items/SKU-A", 'kate', %p,
             -body => '{"quantity":2}');
    is($r->{status}, 200, 'shipped: PUT a line');
    is(body_of($r)->{total}{amount}, '476.14', 'shipped: the total');
    ok(defined $r->{headers}{'ratelimit-remaining'},
       'shipped: a rate limit applies');

    is(req(GET => "/v1/carts/$id", 'kate', %p)->{status}, 200,
       'shipped: GET the cart');
    is_error(req(GET => "/v1/carts/$id", 'liam', %p), 404, 'cart_not_found',
             "shipped: another sub's cart");
    is_error(req(GET => "/v1/carts/$id", undef, %p), 401, 'missing_token',
             'shipped: no token');
    is_error(req(GET => "/v1/carts/$id/items", 'kate', %p), 404, 'not_found',
             'shipped: another path under /v1/carts');
    # the checkout is the order module's (t/15 has it): reached, it asks
    # for its Idempotency-Key first
    $r = req(POST => "/v1/carts/$id/checkout", 'kate', %p, -body => '{}');
    is($r->{status}, 400, 'shipped: POST .../checkout reaches the order '
       . 'module') or diag($r->{body});
    like($r->{body}, qr/Idempotency-Key/i, '... which wants an '
         . 'Idempotency-Key');
    is_error(req(POST => "/v1/carts/$id/checkout", undef, %p, -body => '{}'),
             401, 'missing_token', 'shipped: checkout without a token');

    is(req(DELETE => "/v1/carts/$id/items/SKU-A", 'kate', %p)->{status},
       200, 'shipped: DELETE a line');
    is(req(DELETE => "/v1/carts/$id", 'kate', %p)->{status}, 204,
       'shipped: DELETE the cart');
    is(req(GET => '/v1/catalog/none', undef, %p)->{status}, 404,
       'shipped: the read API beside it needs no token');
}


# ---- Redis down: a fast 503 -------------------------------------------------

{
    $t->stop_redis;

    my $t0 = time;
    my $r = req(POST => '/v1/carts', 'alice', -body => '{"store_id":"s"}');
    is_error($r, 503, 'redis_unavailable', 'POST with Redis down');
    ok($r->{headers}{'retry-after'}, 'Retry-After');

    $r = req(GET => "/v1/carts/$cart", 'alice');
    is_error($r, 503, 'redis_unavailable', 'GET with Redis down');

    $r = put_item($cart, 'SKU-A', 1);
    is_error($r, 503, 'redis_unavailable', 'PUT with Redis down');
    ok(time - $t0 < 3, 'answered at once');
}


# ---- configuration ----------------------------------------------------------

{
    my $n = 0;
    my $check = sub {
        my ($http) = @_;
        my $name = 'bad' . ++$n;
        $t->write_nginx_conf("commerce_redis_server 127.0.0.1:1;\n$http",
                             name => $name);
        return $t->nginx_test_ok($name);
    };
    my $srv = sub { "server {\n listen 127.0.0.1:%%PORT_HTTP%%;\n$_[0]\n}\n" };

    my %bad = (
        'three arguments' => [
            'commerce_cart_owner $http_x; location /c { commerce_cart a b c; }',
            qr/invalid number of arguments/],
        'twice' => [
            'commerce_cart_owner $http_x; '
            . 'location /c { commerce_cart; commerce_cart $x; }',
            qr/"commerce_cart" directive is duplicate/],
        'max_items 0' => [
            'commerce_cart_max_items 0; ',
            qr/commerce_cart_max_items.*between 1 and 1000/],
        'max_quantity 10001' => [
            'commerce_cart_max_quantity 10001;',
            qr/commerce_cart_max_quantity.*between 1 and 10000/],
        'ttl 0' => [
            'commerce_cart_owner $http_x; commerce_cart_ttl 0; '
            . 'location /c { commerce_cart; }',
            qr/"commerce_cart_ttl" must be at least 1s/],
        'ttl bogus' => [
            'commerce_cart_ttl 7x;',
            qr/"commerce_cart_ttl" directive invalid value/],
    );

    for my $what (sort keys %bad) {
        my ($text, $re) = @{ $bad{$what} };
        my ($ok, $out) = $check->($srv->($text));
        ok(!$ok, "nginx -t refuses $what");
        like($out, $re, "... saying why");
        like($out, qr/\.conf:\d+/, '... with file:line');
    }

    my ($ok, $out) = $check->($srv->(
        'commerce_cart_owner $http_x; location /c { commerce_cart; }'));
    ok($ok, 'an owner given: nginx -t passes') or diag($out);

    # the JWT module defines $commerce_jwt_sub, the default owner
    ($ok, $out) = $check->($srv->('location /c { commerce_cart; }'));
    ok($ok, 'no owner: $commerce_jwt_sub, nginx -t passes') or diag($out);
}

$t->done;
