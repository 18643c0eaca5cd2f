#!/usr/bin/perl

# HTTP semantics shared by the four read endpoints: ETag and If-None-Match,
# HEAD, 405 with Allow, Cache-Control inheritance, keepalive, pipelining.

use strict;
use warnings;

use JSON::PP;
use Test::More;
use lib 't/lib';
use CommerceTest;

my $t = CommerceTest->new;
my $json = JSON::PP->new->allow_nonref;

$t->start_redis;


# A server of the API as conf/nginx.conf has it: the server's error_page
# line, conf/commerce-locations.conf included.
sub shipped_server {
    my $conf = "$CommerceTest::REPO/conf";
    my $text = $t->slurp("$conf/nginx.conf");
    my ($error_page) = $text =~ /^\s*(error_page [^;]+;)/m
        or die "no error_page in conf/nginx.conf";

    return <<"EOF";
server {
    listen 127.0.0.1:%%PORT_SHIPPED%%;
    large_client_header_buffers 2 1k;

    $error_page
    include $conf/commerce-locations.conf;
}
EOF
}

$t->write_nginx_conf(shipped_server() . <<'EOF');
commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;

server {
    listen 127.0.0.1:%%PORT_HTTP%%;

    commerce_cache_control "public, max-age=60";

    location ~ ^/v1/catalog/(?<item_id>[^/]+)$ {
        commerce_catalog_item $item_id;
        commerce_cache_control "public, max-age=5, stale-while-revalidate=30";
    }

    location = /v1/catalog {
        commerce_catalog_list;
    }

    location ~ ^/v1/stores/(?<store_id>[^/]+)/inventory/(?<sku>[^/]+)$ {
        commerce_inventory_item $store_id $sku;
    }

    location ~ ^/v1/stores/(?<store_id>[^/]+)/inventory$ {
        commerce_inventory_list $store_id;
        commerce_cache_control "private, max-age=2";
    }
}

server {
    listen 127.0.0.1:%%PORT_BARE%%;

    location ~ ^/v1/catalog/(?<item_id>[^/]+)$ {
        commerce_catalog_item $item_id;
    }
}
EOF

$t->start_nginx;

$t->redis_pipeline(
    ['SET', 'cat:item:a', '{"id":"a","v":1}'],
    ['SET', 'cat:item:b', '{"id":"b","v":2}'],
    ['SET', 'cat:item:same-as-a', '{"id":"a","v":1}'],
    ['ZADD', 'cat:index', 0, 'a', 0, 'b'],
    ['HSET', 'inv:s1', 'k1', '{"sku":"k1","on_hand":1}',
                       'k2', '{"sku":"k2","on_hand":2}'],
);

my %endpoints = (
    'catalog item' => ['/v1/catalog/a',
                       'public, max-age=5, stale-while-revalidate=30'],
    'catalog list' => ['/v1/catalog', 'public, max-age=60'],
    'inventory item' => ['/v1/stores/s1/inventory/k1', 'public, max-age=60'],
    'inventory list' => ['/v1/stores/s1/inventory', 'private, max-age=2'],
);


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


for my $name (sort keys %endpoints) {
    my ($path, $cc) = @{ $endpoints{$name} };

    my $r = $t->http(GET => $path);
    is($r->{status}, 200, "$name: 200");

    my $etag = $r->{headers}{etag};
    my $len = length $r->{body};

    like($etag // '', qr/^"[0-9a-f]{16}"$/, "$name: strong ETag");
    is($r->{headers}{'content-length'}, $len, "$name: Content-Length");
    is($r->{headers}{'cache-control'}, $cc, "$name: Cache-Control '$cc'");
    like($r->{headers}{vary} // '', qr/^Accept-Encoding$/i,
         "$name: Vary: Accept-Encoding");
    like($r->{headers}{'content-type'}, qr{^application/json},
         "$name: Content-Type");
    ok($r->{body} =~ /^\{/ && eval { $json->decode($r->{body}) },
       "$name: JSON body");

    my $r2 = $t->http(GET => $path);
    is($r2->{headers}{etag}, $etag, "$name: ETag stable across requests");

    # conditional GET
    for my $inm ($etag, '*', qq("0000000000000000", $etag),
                 qq($etag, "ffffffffffffffff"), qq(W/$etag),
                 qq("0000000000000000",$etag))
    {
        $r = $t->http(GET => $path, 'If-None-Match' => $inm);
        is($r->{status}, 304, "$name: If-None-Match: $inm -> 304");
        is($r->{body}, '', "$name: 304 has no body ($inm)");
        is($r->{trailing} // '', '', "$name: nothing after the 304");
        is($r->{headers}{etag}, $etag, "$name: 304 carries the ETag");
        is($r->{headers}{'cache-control'}, $cc,
           "$name: 304 carries Cache-Control");
    }

    for my $inm ('"0000000000000000"', '"0000000000000000", "1"',
                 substr($etag, 0, 17) . '0"', 'W/"nope"')
    {
        $r = $t->http(GET => $path, 'If-None-Match' => $inm);
        is($r->{status}, 200, "$name: If-None-Match: $inm -> 200");
        is(length $r->{body}, $len, "$name: full body ($inm)");
    }

    # HEAD
    $r = $t->http(HEAD => $path);
    is($r->{status}, 200, "$name: HEAD 200");
    is($r->{body} . ($r->{trailing} // ''), '', "$name: HEAD sends no body");
    is($r->{headers}{etag}, $etag, "$name: HEAD has the GET's ETag");
    is($r->{headers}{'content-length'}, $len,
       "$name: HEAD has the GET's Content-Length");
    is($r->{headers}{'cache-control'}, $cc, "$name: HEAD Cache-Control");
    like($r->{headers}{'content-type'} // '', qr{^application/json},
         "$name: HEAD Content-Type");

    $r = $t->http(HEAD => $path, 'If-None-Match' => $etag);
    is($r->{status}, 304, "$name: conditional HEAD -> 304");

    # other methods
    for my $m (qw(POST PUT DELETE PATCH OPTIONS)) {
        $r = $t->http($m => $path, ($m =~ /^P/ ? (-body => '{"x":1}') : ()));
        is_error($r, 405, 'method_not_allowed', "$name: $m");
        is($r->{headers}{allow}, 'GET, HEAD', "$name: $m: Allow: GET, HEAD");
    }
}


# ---- ETags follow the bytes -------------------------------------------------

{
    my $a = $t->http(GET => '/v1/catalog/a');
    my $same = $t->http(GET => '/v1/catalog/same-as-a');
    my $b = $t->http(GET => '/v1/catalog/b');

    is($same->{headers}{etag}, $a->{headers}{etag},
       'same bytes under another id: same ETag');
    isnt($b->{headers}{etag}, $a->{headers}{etag},
         'other bytes: other ETag');

    my $list = $t->http(GET => '/v1/catalog');
    isnt($list->{headers}{etag}, $a->{headers}{etag},
         'list ETag differs from an item ETag');

    $t->redis_cmd('SET', 'cat:item:a', '{"id":"a","v":3}');

    my $r = $t->http(GET => '/v1/catalog/a',
                     'If-None-Match' => $a->{headers}{etag});
    is($r->{status}, 200, 'document changed: old ETag -> 200');
    is($r->{body}, '{"id":"a","v":3}', 'document changed: new body');
    isnt($r->{headers}{etag}, $a->{headers}{etag}, 'document changed: ETag');

    my $list2 = $t->http(GET => '/v1/catalog',
                         'If-None-Match' => $list->{headers}{etag});
    is($list2->{status}, 200, 'a listed document changed: list ETag changed');
}


# ---- errors -----------------------------------------------------------------

{
    my $r = $t->http(GET => '/v1/catalog/missing');
    is_error($r, 404, 'not_found', 'missing item');

    $r = $t->http(GET => '/v1/catalog/missing', 'If-None-Match' => '*');
    is($r->{status}, 404, 'If-None-Match: * on a missing item -> 404');

    $r = $t->http(HEAD => '/v1/catalog/missing');
    is($r->{status}, 404, 'HEAD missing: 404');
    is($r->{body} . ($r->{trailing} // ''), '', 'HEAD missing: no body');

    $r = $t->http(DELETE => '/v1/catalog/missing');
    is($r->{status}, 405, 'DELETE on a missing item: 405 (method first)');

    $r = $t->http(POST => '/v1/catalog/a%01', -body => 'x');
    is($r->{status}, 405, 'POST with an invalid id: 405');
}


# ---- Cache-Control only where configured ------------------------------------

{
    my $r = $t->http(GET => '/v1/catalog/b', -port => $t->port('BARE'));
    is($r->{status}, 200, 'server without commerce_cache_control: 200');
    ok(!exists $r->{headers}{'cache-control'}, 'no Cache-Control by default');
    like($r->{headers}{vary} // '', qr/Accept-Encoding/i, 'Vary still set');

    $r = $t->http(GET => '/v1/catalog/missing', -port => $t->port('BARE'));
    is($r->{headers}{'cache-control'}, 'no-store', 'errors are no-store');
}


# ---- keepalive and pipelining -----------------------------------------------

{
    my $c = $t->conn;
    my $fails = 0;

    for my $i (1 .. 50) {
        my $path = $i % 3 ? '/v1/catalog/b' : '/v1/stores/s1/inventory/k2';
        my $want = $i % 3 ? '{"id":"b","v":2}' : '{"sku":"k2","on_hand":2}';
        my $r = $c->request(GET => $path);
        $fails++ unless $r->{status} == 200 && $r->{body} eq $want;
    }

    is($fails, 0, '50 requests on one keepalive connection');

    # a 405 with a request body must not break the connection
    my $r = $c->request(POST => '/v1/catalog/b', -body => 'GET / HTTP/1.1'
                        . "\r\n\r\n" . ('z' x 5000));
    is($r->{status}, 405, 'keepalive: POST with a body -> 405');
    $r = $c->request(GET => '/v1/catalog/b');
    is($r->{status}, 200, 'keepalive: the body was discarded, next GET ok');
    is($r->{body}, '{"id":"b","v":2}', 'keepalive: next GET body');

    $c = $t->conn;
    $r = $c->request(GET => '/v1/catalog/missing');
    is($r->{status}, 404, 'keepalive: 404');
    $r = $c->request(GET => '/v1/catalog/b');
    is($r->{status}, 200, 'keepalive: 200 after a 404');

    $r = $c->request(HEAD => '/v1/catalog/b');
    is($r->{status}, 200, 'keepalive: HEAD');
    $r = $c->request(GET => '/v1/catalog/b');
    is($r->{body}, '{"id":"b","v":2}', 'keepalive: GET after HEAD');
}

{
    # a 400 keeps the connection open like any other answer
    my $c = $t->conn;
    my $r = $c->request(GET => '/v1/catalog/bad%20id');
    is($r->{status}, 400, 'keepalive: 400 for an invalid id');
    $r = $c->request(GET => '/v1/catalog/b');
    is($r->{status}, 200, 'keepalive: the connection survives a 400')
        or diag($r->{error});

    $c = $t->conn;
    $r = $c->request(GET => '/v1/catalog?limit=0');
    is($r->{status}, 400, 'keepalive: 400 for a bad limit');
    $r = $c->request(GET => '/v1/catalog/b');
    is($r->{status}, 200, 'keepalive: the connection survives a list 400')
        or diag($r->{error});
}

for my $with_400 (0, 1) {
    # one write with 40 requests; the answers come back in order
    my @reqs;
    my %want = (
        '/v1/catalog/b' => [200, '{"id":"b","v":2}'],
        '/v1/catalog/same-as-a' => [200, '{"id":"a","v":1}'],
        '/v1/catalog/missing' => [404, undef],
        '/v1/stores/s1/inventory/k1' => [200, '{"sku":"k1","on_hand":1}'],
        '/v1/stores/s1/inventory/k2' => [200, '{"sku":"k2","on_hand":2}'],
        '/v1/catalog?limit=1' => [200, '{"items":[{"id":"a","v":3}],'
                                       . '"next":"a"}'],
        '/v1/catalog/bad%20id' => [400, undef],
    );
    delete $want{'/v1/catalog/bad%20id'} unless $with_400;
    my @paths = sort keys %want;

    push @reqs, $paths[$_ % @paths] for 0 .. 39;

    my $c = $t->conn;
    my $raw = join '', map {
        "GET $_ HTTP/1.1\r\nHost: localhost\r\n\r\n"
    } @reqs;
    push @{ $c->{pending} }, ('GET') x @reqs;
    $c->send_raw($raw);

    my $fails = 0;

    for my $path (@reqs) {
        my $r = $c->read_response;
        my ($st, $body) = @{ $want{$path} };
        my $got = $r->{body};
        $got =~ s/\n\z// if $path =~ /\?/;   # a list may end with "\n"
        if ($r->{status} != $st || (defined $body && $got ne $body)) {
            diag("pipelined $path: $r->{status} $r->{body} "
                 . ($r->{error} // '')) if $fails++ < 3;
        }
    }

    is($fails, 0, '40 pipelined requests answered in order'
                  . ($with_400 ? ', 400s among them' : ''));
}

# ---- nginx's own errors in JSON (the shipped configuration) ---------------

{
    my $port = $t->port('SHIPPED');
    my %get = (-port => $port);

    my $r = $t->http(GET => '/v1/catalog/a', %get);
    is($r->{status}, 200, 'shipped conf: catalog item');

    is_error($t->http(GET => '/v1/nope', %get), 404, 'not_found',
             'shipped conf: a path that is not the API\'s');
    is_error($t->http(GET => '/v1/stores/s1/inventory/k1/x', %get), 404,
             'not_found', 'shipped conf: below an endpoint');
    is_error($t->http(GET => '/v1/catalog/a', 'If-Match' => '"0"', %get),
             412, 'precondition_failed', 'shipped conf: If-Match fails');
    is_error($t->http(GET => '/v1/catalog/a', %get,
                      'If-Unmodified-Since' => 'Thu, 01 Jan 1970 00:00:00 '
                                               . 'GMT'),
             412, 'precondition_failed', 'shipped conf: If-Unmodified-Since');
    is_error($t->http(GET => '/v1/catalog/' . ('x' x 3000), %get), 414,
             'uri_too_long', 'shipped conf: URI too long');
    is_error($t->http(GET => '/v1/catalog/a', 'X-Big' => 'y' x 3000, %get),
             400, 'bad_request', 'shipped conf: header too large');

    $r = $t->http(TRACE => '/v1/catalog/a', %get);
    is_error($r, 405, 'method_not_allowed', 'shipped conf: TRACE');
    like($r->{headers}{allow} // '', qr/GET/, 'TRACE: Allow');

    my ($data) = $t->http_raw("GET /v1/catalog/a HTTP/1.1\r\n\r\n",
                              port => $port);
    like($data, qr{^HTTP/1\.1 400 .*\r\n\r\n\{"error":"bad_request",}s,
         'shipped conf: no Host header, 400 in JSON');

    is_error($t->http(GET => '/_commerce/error', %get), 404, 'not_found',
             'shipped conf: the error location is internal');

    $r = $t->http(HEAD => '/v1/nope', %get);
    is($r->{status}, 404, 'shipped conf: HEAD of an unknown path');
    is($r->{body}, '', 'HEAD: no body');
}

{
    my ($data, $err) = $t->http_raw("GET /v1/catalog/b HTTP/1.0\r\n\r\n");
    like($data, qr{^HTTP/1\.1 200 }, 'HTTP/1.0 request: 200');
    like($data, qr/\r\n\r\n\{"id":"b","v":2\}\z/,
         'HTTP/1.0 request: body, connection closed');
}

$t->done;
