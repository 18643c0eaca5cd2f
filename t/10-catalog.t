#!/usr/bin/perl

# Catalog read API: GET /v1/catalog/{id} and GET /v1/catalog?after=&limit=
# against documents in Redis (cat:item:{id} strings, cat:index zset).

use strict;
use warnings;

use JSON::PP;
use Test::More;
use lib 't/lib';
use CommerceTest;

my $t = CommerceTest->new;
my $json = JSON::PP->new->allow_nonref;   # bytes in, bytes out

$t->start_redis(args => ['--unixsocket', $t->dir . '/redis.sock',
                         '--unixsocketperm', '777']);

$t->write_nginx_conf(<<'EOF');
commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;

server {
    listen 127.0.0.1:%%PORT_HTTP%%;

    location ~ ^/v1/catalog/(?<item_id>[^/]+)$ {
        commerce_catalog_item $item_id;
        commerce_cache_control "public, max-age=5, stale-while-revalidate=30";
    }

    location = /v1/catalog {
        commerce_catalog_list;
        commerce_cache_control "public, max-age=5";
    }

    location = /small {
        commerce_catalog_list;
        commerce_list_default_limit 3;
        commerce_list_max_limit 7;
    }

    location ~ ^/nocc/(?<item_id>[^/]+)$ {
        commerce_catalog_item $item_id;
    }

    location = /fixed {
        commerce_catalog_item "fixed-id";
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
    ok($e && ref $e eq 'HASH', "$what: body is a JSON object")
        or return diag("body: $r->{body}");
    is($e->{error}, $code, "$what: error code $code");
    ok(defined $e->{message} && !ref $e->{message} && length $e->{message},
       "$what: message is a non-empty string");
    is_deeply([sort keys %$e], [qw(error message)],
              "$what: only error and message");
}


# ---- empty catalog ----------------------------------------------------------

{
    my $r = get('/v1/catalog');
    is($r->{status}, 200, 'empty catalog: 200');
    is(lbody($r), '{"items":[],"next":null}', 'empty catalog: no items');

    $r = get('/v1/catalog/nothing-here');
    is_error($r, 404, 'not_found', 'missing item');
}


# ---- seed -------------------------------------------------------------------

my %doc;

for my $i (1 .. 137) {
    my $id = sprintf 'item-%04d', $i;
    $doc{$id} = qq({"id":"$id","name":"Item $i","price":) . ($i * 100 + 99)
                . qq(,"tags":["t) . ($i % 7) . qq("]});
}

my %odd = (
    'A-upper'                => 'sorts before lowercase',
    'a:b'                    => 'colon',
    "caf\xc3\xa9"            => 'utf-8',
    "q\"uote\\"              => 'quote and backslash',
    'z~tilde'                => 'tilde',
    "\xe5\x95\x86\xe5\x93\x81" => 'cjk',
    'fixed-id'               => 'literal complex value',
);

for my $id (keys %odd) {
    my $e = $id;
    $e =~ s/(["\\])/\\$1/g;
    $doc{$id} = qq({"id":"$e","note":"$odd{$id}"});
}

# raw bytes: served as stored, NULs and CRLFs included
# (not valid JSON, so kept out of the index the list tests decode)
my $binary_id = 'binary';
my $binary_doc = qq({"id":"binary","b":"x\0y\r\n\r\nHTTP/1.1 200 OK\r\n"});

# a 256-byte id is the longest valid one
my $long_id = 'L' x 256;
$doc{$long_id} = '{"id":"long"}';

my @ghosts = ('item-0050-ghost', 'item-0100-ghost', "\xff-ghost-last");

my @cmds;
push @cmds, ['SET', "cat:item:$_", $doc{$_}] for keys %doc;
push @cmds, ['ZADD', 'cat:index', 0, $_] for keys %doc, @ghosts;
push @cmds, ['SET', "cat:item:$binary_id", $binary_doc];
$t->redis_pipeline(@cmds);

my @ids = sort keys %doc;              # byte order, like ZRANGEBYLEX
my @index = sort(keys %doc, @ghosts);


# ---- items ------------------------------------------------------------------

my $bad = 0;

for my $id (@ids) {
    my $r = get('/v1/catalog/' . CommerceTest::uri_escape($id));
    $bad++ unless $r->{status} == 200 && $r->{body} eq $doc{$id};
    diag("item '$id': $r->{status} $r->{body}") if $r->{body} ne $doc{$id};
}

is($bad, 0, 'every item is served with its stored bytes (' . @ids . ')');

{
    my $r = get('/v1/catalog/item-0001');
    is($r->{status}, 200, 'item: 200');
    is($r->{body}, $doc{'item-0001'}, 'item: body');
    like($r->{headers}{'content-type'}, qr{^application/json}, 'item: JSON');
    is($r->{headers}{'content-length'}, length $doc{'item-0001'},
       'item: Content-Length');
    like($r->{headers}{etag} // '', qr/^"[0-9a-f]{16}"$/, 'item: strong ETag');
    is($r->{headers}{'cache-control'},
       'public, max-age=5, stale-while-revalidate=30', 'item: Cache-Control');
    like($r->{headers}{vary} // '', qr/Accept-Encoding/i,
         'item: Vary: Accept-Encoding');

    $r = get('/nocc/item-0001');
    is($r->{status}, 200, 'item without commerce_cache_control: 200');
    ok(!exists $r->{headers}{'cache-control'},
       'item without commerce_cache_control: no Cache-Control');

    $r = get('/v1/catalog/item-0001?unrelated=1&limit=abc');
    is($r->{body}, $doc{'item-0001'}, 'item: query string ignored');

    $r = get('/v1/catalog/' . CommerceTest::uri_escape($binary_id));
    ok($r->{body} eq $binary_doc, 'item with NUL and CRLF bytes intact');

    $r = get('/v1/catalog/q%22uote%5C');
    is($r->{body}, $doc{"q\"uote\\"}, 'item id with quote and backslash');

    $r = get("/v1/catalog/caf%C3%A9");
    is($r->{body}, $doc{"caf\xc3\xa9"}, 'UTF-8 item id');

    $r = get('/v1/catalog/' . $long_id);
    is($r->{status}, 200, '256-byte id: 200');

    $r = get('/v1/catalog/' . ('M' x 256));
    is_error($r, 404, 'not_found', 'missing 256-byte id');

    $r = get('/fixed');
    is($r->{body}, $doc{'fixed-id'}, 'literal id in commerce_catalog_item');

    $r = get('/v1/catalog/item-0050-ghost');
    is_error($r, 404, 'not_found', 'indexed id without document');
}

is_error(get('/v1/catalog/' . ('L' x 257)), 400, 'invalid_argument',
         '257-byte id');
is_error(get('/v1/catalog/a%01b'), 400, 'invalid_argument',
         'id with control char %01');
is_error(get('/v1/catalog/a%20b'), 400, 'invalid_argument', 'id with space');
is_error(get('/v1/catalog/a%7Fb'), 400, 'invalid_argument', 'id with DEL');
is_error(get('/v1/catalog/a%09b'), 400, 'invalid_argument', 'id with tab');
is_error(get('/v1/catalog/%0D%0Ax'), 400, 'invalid_argument', 'id with CRLF');


# ---- list: pages and walks --------------------------------------------------

# The exact body of a page for the ids it lists.
sub page_body {
    my ($list, $next) = @_;
    return '{"items":[' . join(',', map { $doc{$_} } @$list) . '],"next":'
           . (defined $next ? $json->encode($next) : 'null') . '}';
}


sub page {
    my ($path) = @_;

    my $r = get($path);
    return (undef, $r) unless $r->{status} == 200;

    my $p = eval { $json->decode($r->{body}) };
    return (undef, $r) unless $p;

    return ($p, $r);
}


{
    my ($p, $r) = page('/v1/catalog?limit=10');
    is($r->{status}, 200, 'first page: 200');
    my @want = @ids[0 .. 9];
    is(lbody($r), page_body(\@want, $want[-1]),
       'first page: exact body, items in order, next = last id');
    like($r->{headers}{etag} // '', qr/^"[0-9a-f]{16}"$/, 'list: ETag');
    is($r->{headers}{'cache-control'}, 'public, max-age=5',
       'list: Cache-Control');
    like($r->{headers}{vary} // '', qr/Accept-Encoding/i, 'list: Vary');
    like($r->{headers}{'content-type'}, qr{^application/json}, 'list: JSON');

    ($p, $r) = page('/v1/catalog?limit=10&after='
                    . CommerceTest::uri_escape($want[-1]));
    is(lbody($r), page_body([@ids[10 .. 19]], $ids[19]),
       'second page starts after the cursor (exclusive)');

    ($p, $r) = page('/v1/catalog');
    is(scalar @{ $p->{items} }, 50, 'default limit is 50');
    is($p->{next}, $index[49], 'default page: next = 50th indexed id')
        if $p;

    ($p, $r) = page('/small');
    is(lbody($r), page_body([@ids[0 .. 2]], $ids[2]),
       'commerce_list_default_limit 3');

    ($p, $r) = page('/small?limit=7');
    is(scalar @{ $p->{items} // [] }, 7, 'limit = commerce_list_max_limit');

    is_error(get('/small?limit=8'), 400, 'invalid_argument',
             'limit > commerce_list_max_limit');

    ($p, $r) = page('/v1/catalog?limit=200');
    is(scalar @{ $p->{items} // [] }, scalar @ids,
       'limit=200 (the default max) returns the whole catalog');
    is($p->{next}, undef, 'whole catalog in one page: next is null') if $p;

    ($p, $r) = page('/v1/catalog?after=item-0005a&limit=2');
    is(lbody($r), page_body(['item-0006', 'item-0007'], 'item-0007'),
       'after an id not in the index starts at the next greater id');

    ($p, $r) = page('/v1/catalog?after=caf%C3%A9&limit=1');
    my ($i) = grep { $ids[$_] eq "caf\xc3\xa9" } 0 .. $#ids;
    is(lbody($r), page_body([$ids[$i + 1]], $ids[$i + 1]),
       'after is URL-decoded (UTF-8)');

    # the id sorted right before q"uote\ gives a page ending on it
    ($i) = grep { $ids[$_] eq "q\"uote\\" } 0 .. $#ids;
    ($p, $r) = page('/v1/catalog?limit=1&after='
                    . CommerceTest::uri_escape($ids[$i - 1]));
    is(lbody($r), page_body(["q\"uote\\"], "q\"uote\\"),
       'next is JSON-escaped');
    is($p->{next}, "q\"uote\\", 'escaped next decodes to the id') if $p;

    ($p, $r) = page('/v1/catalog?after=%FF%FF');
    is(lbody($r), '{"items":[],"next":null}',
       'after the last id: empty page, next null');

    ($p, $r) = page('/v1/catalog?limit=50&after='
                    . CommerceTest::uri_escape($ids[-1]));
    is(lbody($r), '{"items":[],"next":null}',
       'a last page of ids without documents has no items');
}


# Follows next until null; every id exactly once, in order.
sub walk {
    my ($limit) = @_;

    my (@seen, $after, $pages, $ok);
    $ok = 1;

    while (1) {
        my $path = "/v1/catalog?limit=$limit";
        $path .= '&after=' . CommerceTest::uri_escape($after)
            if defined $after;

        my ($p, $r) = page($path);
        if (!$p) {
            diag("walk limit=$limit: $path -> $r->{status} $r->{body}");
            return 0;
        }

        $pages++;

        if (@{ $p->{items} } > $limit) {
            diag("walk limit=$limit: page of " . @{ $p->{items} });
            $ok = 0;
        }

        my @page_ids = map { $_->{id} } @{ $p->{items} };
        # ids are recovered from the document bodies' "id" fields
        s/^long$/$long_id/ for @page_ids;

        my $expect = page_body(\@page_ids, $p->{next});
        if (lbody($r) ne $expect) {
            diag("walk limit=$limit: body is not the stored documents");
            $ok = 0;
        }

        push @seen, @page_ids;

        last unless defined $p->{next};

        if (defined $after && $p->{next} le $after) {
            diag("walk limit=$limit: next did not advance: $p->{next}");
            return 0;
        }

        $after = $p->{next};

        if ($pages > @index + 2) {
            diag("walk limit=$limit: no end");
            return 0;
        }
    }

    is_deeply(\@seen, \@ids,
              "walk limit=$limit: every id once, in order ($pages pages)")
        or return 0;

    return $ok;
}

ok(walk($_), "walk with limit=$_") for 1, 7, 50, 200;


# ---- list: bad arguments ----------------------------------------------------

for my $q ('limit=0', 'limit=-1', 'limit=abc', 'limit=201', 'limit=',
           'limit=1.5', 'limit=%2B5', 'limit=0x10', 'limit=5abc',
           'limit=18446744073709551617', 'after=', 'after=a%01b',
           'after=a%20b', 'after=%7F', 'after=' . ('a' x 257),
           'limit=5&after=')
{
    is_error(get("/v1/catalog?$q"), 400, 'invalid_argument', "list ?$q");
}

{
    my ($p, $r) = page('/v1/catalog?after=' . ('a' x 256) . '&limit=1');
    is($r->{status}, 200, 'after with 256 bytes is valid');
}


# ---- a 1 MiB document -------------------------------------------------------

{
    my $pre = '{"id":"big","blob":"';
    my $post = '"}';
    my $fill = join '', map { chr(97 + ($_ * 7 + ($_ >> 5)) % 26) }
                        0 .. 4095;
    my $blob = substr($fill x 300, 0, 1048576 - length($pre) - length($post));
    my $big = $pre . $blob . $post;
    is(length $big, 1048576, '1 MiB document');

    $t->redis_cmd('SET', 'cat:item:big', $big);

    my $r = get('/v1/catalog/big');
    is($r->{status}, 200, '1 MiB: 200');
    is($r->{headers}{'content-length'}, 1048576, '1 MiB: Content-Length');
    ok($r->{body} eq $big, '1 MiB: body byte-identical')
        or diag('got ' . length($r->{body}) . ' bytes');

    my $etag = $r->{headers}{etag};
    like($etag // '', qr/^"[0-9a-f]{16}"$/, '1 MiB: ETag');

    $r = get('/v1/catalog/big');
    is($r->{headers}{etag}, $etag, '1 MiB: same ETag on the next GET');

    $r = get('/v1/catalog/big', 'If-None-Match' => $etag);
    is($r->{status}, 304, '1 MiB: If-None-Match -> 304');
    is($r->{body}, '', '1 MiB: 304 has no body');

    # one byte changed in the middle changes the ETag
    my $big2 = $big;
    substr($big2, 524288, 1) = substr($big2, 524288, 1) eq 'x' ? 'y' : 'x';
    $t->redis_cmd('SET', 'cat:item:big2', $big2);
    $r = get('/v1/catalog/big2');
    ok($r->{body} eq $big2, '1 MiB variant served intact');
    isnt($r->{headers}{etag}, $etag, 'one byte changed: another ETag');

    $r = get('/v1/catalog/big', 'If-None-Match' => $r->{headers}{etag});
    is($r->{status}, 200, "the variant's ETag does not match the original");
    ok($r->{body} eq $big, 'and the original is sent in full');

    # two 1 MiB documents in one list page
    $t->redis_pipeline(['SET', 'cat:item:~big1', $big],
                       ['SET', 'cat:item:~big2', $big2],
                       ['ZADD', 'cat:index', 0, '~big1', 0, '~big2']);
    $r = get('/v1/catalog?after=z%7Etilde&limit=2');
    ok(lbody($r) eq '{"items":[' . $big . ',' . $big2 . '],"next":"~big2"}',
       'a page with two 1 MiB documents is intact')
        or diag('got ' . length($r->{body}) . " bytes, status $r->{status}");
    $t->redis_pipeline(['ZREM', 'cat:index', '~big1', '~big2']);
}


# ---- the same documents through a unix socket -------------------------------

$t->stop_nginx;

$t->write_nginx_conf(<<'EOF', name => 'unix');
commerce_redis_server unix:%%TESTDIR%%/redis.sock;

server {
    listen 127.0.0.1:%%PORT_UNIX%%;

    location ~ ^/v1/catalog/(?<item_id>[^/]+)$ {
        commerce_catalog_item $item_id;
    }

    location = /v1/catalog {
        commerce_catalog_list;
    }
}
EOF

$t->start_nginx(name => 'unix', port => $t->port('UNIX'));

{
    my $r = $t->http(GET => '/v1/catalog/item-0042', -port => $t->port('UNIX'));
    is($r->{status}, 200, 'unix socket: item 200');
    is($r->{body}, $doc{'item-0042'}, 'unix socket: item body');

    $r = $t->http(GET => '/v1/catalog?limit=3', -port => $t->port('UNIX'));
    is(lbody($r), page_body([@ids[0 .. 2]], $ids[2]), 'unix socket: list');
}

$t->done;
