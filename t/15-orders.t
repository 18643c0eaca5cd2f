#!/usr/bin/perl
# The order API (commerce_orders) and the admin API of the sagas
# (commerce_order_admin): POST /v1/orders with an Idempotency-Key
# (required, an RFC 8941 sf-string, scoped to the owner; the same key in
# flight: 409, with another body: 422, after completion: the stored answer
# replayed byte for byte), the body checked field by field (400 types, 422
# values), order.place on commerce.commands answered 202 only after the
# broker's ack (broker down: 503 and the record released, so the retry is
# published once), cancel and the admin commands likewise, and the reads
# of the orders read model, written here by the test as the saga worker
# will (docs/contract.md).  The caller is the token's sub (commerce_jwt,
# tokens signed by commerce-jwt with a key of the JWT vectors), an admin
# with the role admin; commerce_order_owner and commerce_order_is_admin
# (from headers) in one location.
#
# Real nginx, redis-server and commerce-devbroker; Kafka read with kcat.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IPC::Open3 qw(open3);
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);

use CommerceBroker qw(wait_for);
use CommerceTest;

CommerceBroker->skip_unless_available;

my $t = CommerceTest->new;
my $tag = sprintf '%08x', int rand 0xffffffff;
my $TOPIC = "o.$tag";
my $JSON = JSON::PP->new->canonical;
my $repo = $CommerceTest::REPO;
my $fix = "$repo/t/fixtures/jwt";
my $tool = ($ENV{COMMERCE_BUILD} // "$repo/build") . '/bin/commerce-jwt';

BAIL_OUT("$tool is missing: make workers") unless -x $tool;

# a token of the user (roles admin when asked), signed once
my %tokens;
sub token {
    my ($sub, $admin) = @_;
    return $tokens{"$sub/$admin"} //= do {
        my $claims = $JSON->encode({ iss => 'https://issuer.test',
                                     sub => $sub, exp => time + 3600,
                                     roles => $admin ? ['shopper', 'admin']
                                                     : ['shopper'] });
        my $pid = open3(my $in, my $out, undef, $tool, 'sign', '--key',
                        "$fix/keys/rsa.jwk", '--alg', 'RS256',
                        '--claims', $claims);
        close $in;
        my $tok = do { local $/; <$out> } // '';
        waitpid($pid, 0);
        die "sign failed: $?" if $?;
        chomp $tok;
        $tok;
    };
}

# ---------------------------------------------------- nginx -t errors ---

sub conf_error {
    my ($name, $http) = @_;
    $t->write_nginx_conf($http, name => $name);
    my ($ok, $out) = $t->nginx_test_ok($name);
    return $ok ? '' : $out;
}

like(conf_error('no_redis', <<'EOF2'),
    commerce_kafka_brokers 127.0.0.1:%%PORT_NOBROKER%%;
    server {
        listen 127.0.0.1:%%PORT_HTTP%%;
        location = /v1/orders { commerce_orders orders; }
    }
EOF2
     qr/commerce_redis_server/, 'commerce_orders needs commerce_redis_server');

like(conf_error('bad_api', <<'EOF2'),
    commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;
    commerce_kafka_brokers 127.0.0.1:%%PORT_NOBROKER%%;
    server {
        listen 127.0.0.1:%%PORT_HTTP%%;
        location = /x { commerce_orders sagas; }
    }
EOF2
     qr/unknown order API "sagas"/, 'an admin API is not a commerce_orders one');

like(conf_error('no_id', <<'EOF2'),
    commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;
    commerce_kafka_brokers 127.0.0.1:%%PORT_NOBROKER%%;
    server {
        listen 127.0.0.1:%%PORT_HTTP%%;
        location = /x { commerce_orders order; }
    }
EOF2
     qr/"order" takes the order id/, 'commerce_orders order needs the id');

like(conf_error('short_ttl', <<'EOF2'),
    commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;
    commerce_kafka_brokers 127.0.0.1:%%PORT_NOBROKER%%;
    commerce_idempotency_ttl 10ms;
    server {
        listen 127.0.0.1:%%PORT_HTTP%%;
        location = /v1/orders { commerce_orders orders; }
    }
EOF2
     qr/at least 1s/, 'commerce_idempotency_ttl below 1s fails nginx -t');

# ------------------------------------------------------------- stack ---

my $broker = CommerceBroker->new($t, consume_timeout => 60);
my $bs = $broker->bootstrap;

$t->start_redis;

$t->write_nginx_conf(<<"EOF2", workers => 2);
    commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;
    commerce_redis_connect_timeout 500ms;
    commerce_redis_reconnect_min 10ms;
    commerce_redis_reconnect_max 200ms;
    commerce_redis_breaker_timeout 300ms;

    commerce_kafka_brokers $bs;
    commerce_kafka_property reconnect.backoff.max.ms 200;
    commerce_kafka_delivery_timeout 2s;
    commerce_kafka_breaker_threshold 0;

    commerce_limit_zone \$commerce_jwt_sub zone=lim:1m rate=1r/m burst=1;
    commerce_limit_zone \$commerce_jwt_sub zone=orders:1m rate=1000r/s
                        burst=1000;

    commerce_jwt_keys_file $fix/jwks.json;
    commerce_jwt_issuer https://issuer.test;

    commerce_order_topic $TOPIC;
    commerce_idempotency_ttl 1h;
    commerce_idempotency_inflight_ttl 30s;

    server {
        listen 127.0.0.1:%%PORT_HTTP%%;
        commerce_jwt on;

        location = /v1/orders { commerce_orders orders; }
        location ~ ^/v1/orders/([^/]+)\$ { commerce_orders order \$1; }
        location ~ ^/v1/orders/([^/]+)/cancel\$ {
            commerce_orders cancel \$1;
        }
        location ~ ^/v1/orders/([^/]+)/events\$ {
            commerce_orders events \$1;
        }
        location = /v1/carts { commerce_cart; }
        location ~ ^/v1/carts/(?<cart_id>[^/]+)\$ { commerce_cart \$cart_id; }
        location ~ ^/v1/carts/(?<cart_id>[^/]+)/items/(?<sku>[^/]+)\$ {
            commerce_cart \$cart_id \$sku;
        }
        location ~ ^/v1/carts/(?<cart_id>[^/]+)/checkout\$ {
            commerce_orders checkout \$cart_id;
        }
        location = /v1/admin/sagas { commerce_order_admin sagas; }
        location ~ ^/v1/admin/sagas/([^/]+)\$ {
            commerce_order_admin saga \$1;
        }
        location ~ ^/v1/admin/sagas/([^/]+)/retry\$ {
            commerce_order_admin retry \$1;
        }
        location ~ ^/v1/admin/sagas/([^/]+)/compensate\$ {
            commerce_order_admin compensate \$1;
        }
        location = /v1/admin/projections/rebuild {
            commerce_order_admin rebuild;
        }
        location = /limited/orders {
            commerce_limit zone=lim;
            commerce_orders orders;
        }
        location = /hdr/orders {
            commerce_jwt off;
            commerce_order_owner \$http_x_test_sub;
            commerce_order_is_admin \$http_x_test_admin;
            commerce_orders orders;
        }
        location ~ ^/hdr/orders/([^/]+)\$ {
            commerce_jwt off;
            commerce_order_owner \$http_x_test_sub;
            commerce_order_is_admin \$http_x_test_admin;
            commerce_orders order \$1;
        }
        location = /hdr/sagas {
            commerce_jwt off;
            commerce_order_owner \$http_x_test_sub;
            commerce_order_is_admin \$http_x_test_admin;
            commerce_order_admin sagas;
        }
    }

    # the shipped locations, as conf/nginx.conf includes them
    server {
        listen 127.0.0.1:%%PORT_SHIPPED%%;

        include $repo/conf/commerce-locations.conf;
        include $repo/conf/commerce-orders.conf;
    }
EOF2

$t->start_nginx;

sub decode {
    my ($s) = @_;
    my $v = eval { JSON::PP->new->decode($s) };
    return $v // {};
}

sub req {
    my ($method, $path, %o) = @_;
    my @h;
    if ($path =~ m{^/hdr/}) {
        push @h, 'X-Test-Sub' => $o{sub} if defined $o{sub};
        push @h, 'X-Test-Admin' => 1 if $o{admin};
    } elsif (defined $o{sub}) {
        push @h, Authorization => 'Bearer ' . token($o{sub}, $o{admin} // 0);
    }
    push @h, 'Idempotency-Key' => $o{key} if defined $o{key};
    push @h, 'Content-Type' => 'application/json' if defined $o{body};
    push @h, @{ $o{h} // [] };
    return $t->http($method => $path, @h, -timeout => 40,
                    defined $o{body} ? (-body => $o{body}) : ());
}

sub order_body {
    my (%o) = @_;
    return $JSON->encode({
        store_id => $o{store} // 'store-1',
        items => $o{items} // [ { sku => 'SKU-A', quantity => 2 },
                                { sku => 'SKU-B', quantity => 1 } ],
        shipping_address => { name => 'A. Shopper', line1 => '1 Main St',
                              city => 'Lyon', country => 'FR' },
        payment_method => $o{pm} // 'pm_tok_visa',
        %{ $o{extra} // {} },
    });
}

sub place {
    my ($key, $body, %o) = @_;
    return req(POST => $o{path} // '/v1/orders', sub => $o{sub} // 'user-1',
               key => $key, body => $body);
}

sub msgs { $broker->consume($TOPIC) }
sub with_key {
    my ($k) = @_;
    return grep { ($_->{h}{idempotency_key} // '') eq $k } msgs();
}

my $UUID = qr/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

# the read model the projector writes
sub seed {
    for my $sku ('SKU-A', 'SKU-B') {
        $t->redis_cmd('HSET', 'inv:store-1', $sku,
                      qq({"sku":"$sku","on_hand":10,"reserved":0,)
                      . qq("available":10,"orderable":true,"version":1,)
                      . qq("price":{"amount":"2.50","currency":"EUR"}}));
    }
}
seed();

# the brokers reachable from both workers before the checks
{
    my $n = 0;
    ok(wait_for(sub {
        $n++;
        place("\"warmup-$n-$tag\"", order_body())->{status} == 202
    }, 100), 'warm-up order accepted');
}

# ------------------------------------------------- Idempotency-Key ---

{
    my $body = order_body();

    my $r = req(POST => '/v1/orders', sub => 'user-1', body => $body);
    is($r->{status}, 400, 'no Idempotency-Key: 400');
    is($r->{headers}{'content-type'}, 'application/problem+json',
       '... as problem+json');
    my $p = decode($r->{body});
    is($p->{error}, 'invalid_idempotency_key', '... invalid_idempotency_key');
    is($p->{field}, 'Idempotency-Key', '... naming the header');
    is($p->{status}, 400, '... with its status');

    for my $bad ('abc', '""', '"' . ('k' x 256) . '"', '"a\\b"', '"a',
                 "\"caf\xc3\xa9\"") {
        $r = place($bad, $body);
        is($r->{status}, 400, "Idempotency-Key $bad: 400")
            or diag($r->{body});
    }

    $r = req(POST => '/v1/orders', sub => 'user-1', body => $body,
             h => [ 'Idempotency-Key' => [ '"twice-1"', '"twice-2"' ] ]);
    is($r->{status}, 400, 'two Idempotency-Key headers: 400');
    like(decode($r->{body})->{detail} // $r->{body}, qr/not several/,
         '... one header, not several');

    $r = place('"' . ('k' x 255) . '"', $body);
    is($r->{status}, 202, 'a key of 255 characters is taken');

    $r = place('"with \\"quote\\" and \\\\"', $body);
    is($r->{status}, 202, 'escapes in the sf-string are decoded');
    is(scalar(with_key('with "quote" and \\')), 1,
       '... and the decoded key is the header of the command');

    $r = req(POST => '/v1/orders', key => '"k"', body => $body);
    is($r->{status}, 401, 'no token: 401 (commerce_jwt)');
    like($r->{headers}{'www-authenticate'} // '', qr/^Bearer/,
         '... with WWW-Authenticate: Bearer');

    $r = req(POST => '/hdr/orders', key => '"k"', body => $body);
    is($r->{status}, 401, 'commerce_order_owner empty: 401');
    is(decode($r->{body})->{error}, 'unauthenticated', '... unauthenticated');
    like($r->{headers}{'www-authenticate'} // '', qr/^Bearer/,
         '... with WWW-Authenticate: Bearer');

    $r = req(POST => '/hdr/orders', sub => 'hdr-user', key => "\"hdr-$tag\"",
             body => $body);
    is($r->{status}, 202, 'commerce_order_owner from a header: 202');
    my ($m) = with_key("hdr-$tag");
    is($m && $m->{h}{sub}, 'hdr-user', '... its value is the sub');
    my $id = decode($r->{body})->{order_id} // '';
    $t->redis_cmd('SET', "ord:order:$id", qq({"order_id":"$id","sub":"x"}));
    is(req(GET => "/hdr/orders/$id", sub => 'hdr-user')->{status}, 404,
       '... someone else\'s order is not his');
    is(req(GET => "/hdr/orders/$id", sub => 'hdr-user', admin => 1)->{status},
       200, '... commerce_order_is_admin makes him an admin');
    is(req(GET => '/hdr/sagas?status=failed', sub => 'hdr-user')->{status},
       403, '... and without it the admin API is 403');
    is(req(GET => '/v1/orders/' . $id, sub => 'x')->{status}, 200,
       'the token\'s sub owns its orders');
}

# ------------------------------------------------------- validation ---

{
    my @cases = (
        [ '{"store_id":', 400, 'invalid_json', undef ],
        [ '[1]', 400, 'not_an_object', undef ],
        [ '{"a":1,"a":2}', 400, 'duplicate_key', undef ],
        [ order_body(extra => { card => '4111' }), 400, 'unknown_field',
          'card' ],
        [ order_body(store => 5), 400, 'invalid_type', 'store_id' ],
        [ order_body(store => 'a b'), 422, 'invalid_id', 'store_id' ],
        [ order_body(items => {}), 400, 'invalid_type', 'items' ],
        [ order_body(items => []), 422, 'invalid_items', 'items' ],
        [ order_body(items => [ map { { sku => "S$_", quantity => 1 } }
                                1 .. 101 ]), 422, 'invalid_items', 'items' ],
        [ order_body(items => [ 'SKU-A' ]), 400, 'invalid_type', 'items[0]' ],
        [ order_body(items => [ { sku => 'SKU-A', quantity => 1 },
                                { sku => 'SKU-B', quantity => 0 } ]),
          422, 'invalid_quantity', 'items[1].quantity' ],
        [ order_body(items => [ { sku => 'SKU-A', quantity => '2' } ]),
          400, 'invalid_type', 'items[0].quantity' ],
        [ order_body(items => [ { sku => 'SKU-A', quantity => 1.5 } ]),
          400, 'invalid_type', 'items[0].quantity' ],
        [ order_body(items => [ { sku => 'SKU-A', quantity => 10001 } ]),
          422, 'invalid_quantity', 'items[0].quantity' ],
        [ order_body(items => [ { sku => 'SKU-A', quantity => 1,
                                  price => 1 } ]),
          400, 'unknown_field', 'items[0].price' ],
        [ order_body(items => [ { sku => 'SKU-A', quantity => 1 },
                                { sku => 'SKU-A', quantity => 2 } ]),
          422, 'duplicate_sku', 'items[1].sku' ],
        [ order_body(pm => '4111 1111 1111 1111'), 422,
          'invalid_payment_method', 'payment_method' ],
        [ order_body(pm => ['x']), 400, 'invalid_type', 'payment_method' ],
        [ order_body(extra => { shipping_address => 'Lyon' }), 400,
          'invalid_type', 'shipping_address' ],
    );

    my $i = 0;
    for my $c (@cases) {
        my ($body, $status, $code, $field) = @$c;
        $i++;
        my $r = place("\"bad-$i-$tag\"", $body);
        is($r->{status}, $status, "bad body $i: $status $code");
        my $p = decode($r->{body});
        is($p->{error}, $code, "... $code");
        is($p->{field}, $field, '... field ' . ($field // 'none'));
    }

    is(scalar(grep { ($_->{h}{idempotency_key} // '') =~ /^bad-/ } msgs()),
       0, 'no refused order was published');

    # an unknown sku: 422, and the key is free again for the fixed order
    my $key = "\"unknown-$tag\"";
    my $r = place($key, order_body(items => [ { sku => 'SKU-A', quantity => 1 },
                                              { sku => 'SKU-Z',
                                                quantity => 1 } ]));
    is($r->{status}, 422, 'a sku the store does not have: 422');
    is(decode($r->{body})->{field}, 'items[1].sku', '... naming it');
    is(decode($r->{body})->{error}, 'unknown_sku', '... unknown_sku');

    $r = place($key, order_body(store => 'store-2'));
    is($r->{status}, 422, 'skus of another store are unknown there');

    $r = place($key, order_body());
    is($r->{status}, 202, 'the key of a refused order is not held');
}

# ------------------------------------------------- too big for Kafka ---

# under client_max_body_size (1m), over the producer's message.max.bytes
# (1,000,000 with the headers): 413 with its reason, and the record
# released, so that the key takes the order once it fits
{
    my $key = "too-big-$tag";
    my $r = place("\"$key\"", order_body(extra => { shipping_address => {
        city => 'Lyon', note => 'x' x 1_010_000 } }));
    is($r->{status}, 413, 'an order too large for Kafka: 413');
    is($r->{headers}{'content-type'}, 'application/problem+json',
       '... as problem+json');
    is(decode($r->{body})->{error}, 'body_too_large', '... body_too_large');

    $r = place("\"$key\"", order_body());
    is($r->{status}, 202, '... its record released: the key takes an order');
    is(scalar(with_key($key)), 1, '... which alone is in Kafka');
}

# A size the producer takes but the broker refuses (its own limit, here a
# fault of the devbroker): the delivery report's MSG_SIZE_TOO_LARGE is a
# 413 too, never a 503 to retry, and the record is released
{
    my $key = "broker-size-$tag";
    $broker->control('produce-error 10');
    my $r = place("\"$key\"", order_body());
    is($r->{status}, 413, 'the broker refuses the size: 413');
    is(decode($r->{body})->{error}, 'body_too_large', '... body_too_large');
    ok(!exists $r->{headers}{'retry-after'}, '... without Retry-After');
    is(scalar(with_key($key)), 0, '... and nothing is in Kafka');

    $r = place("\"$key\"", order_body());
    is($r->{status}, 202, '... its record released: the key takes the order');
    is(scalar(with_key($key)), 1, '... which alone is in Kafka');
}

# ----------------------------------------- happy path, replay, scope ---

my $first_id;
{
    my $key = "order-1-$tag";
    my $body = order_body();

    my $r = place("\"$key\"", $body, h => []);
    is($r->{status}, 202, 'POST /v1/orders: 202');
    my $a = decode($r->{body});
    like($a->{order_id} // '', $UUID, '... the order id is a UUIDv7');
    is($a->{status}, 'pending', '... pending');
    is($r->{headers}{location}, "/v1/orders/$a->{order_id}",
       '... Location: /v1/orders/{id}');
    is($r->{headers}{'content-type'}, 'application/json', '... as JSON');
    ok(!exists $r->{headers}{'idempotent-replayed'}, '... not replayed');
    $first_id = $a->{order_id};

    my @m = with_key($key);
    is(scalar(@m), 1, 'one order.place in Kafka');
    my $m = $m[0];
    is($m->{key}, $a->{order_id}, '... keyed by the order id');
    is($m->{h}{command_type}, 'order.place', '... command_type order.place');
    is($m->{h}{command_id}, $a->{order_id}, '... command_id the order id');
    is($m->{h}{sub}, 'user-1', '... sub the caller');
    is($m->{h}{content_type}, 'application/json', '... content_type');
    like($m->{h}{traceparent} // '', qr/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/,
         '... a traceparent');
    like($m->{h}{received_at} // '', qr/^\d{13}$/, '... received_at in ms');

    my $v = decode($m->{value});
    is($v->{type}, 'order.place', 'value: type');
    is($v->{order_id}, $a->{order_id}, 'value: order_id');
    is($v->{command_id}, $a->{order_id}, 'value: command_id');
    is($v->{sub}, 'user-1', 'value: sub');
    is($v->{store_id}, 'store-1', 'value: store_id');
    is_deeply($v->{lines}, [ { sku => 'SKU-A', quantity => 2 },
                             { sku => 'SKU-B', quantity => 1 } ],
              'value: lines');
    is($v->{shipping_address}{city}, 'Lyon', 'value: shipping_address');
    is($v->{payment_method}, 'pm_tok_visa', 'value: payment_method');
    is($v->{issued_at}, $m->{h}{received_at}, 'value: issued_at');

    my $r2 = place("\"$key\"", $body);
    is($r2->{status}, 202, 'the same request again: 202');
    is($r2->{body}, $r->{body}, '... the stored body, byte for byte');
    is($r2->{headers}{location}, $r->{headers}{location}, '... its Location');
    is($r2->{headers}{'content-type'}, $r->{headers}{'content-type'},
       '... its Content-Type');
    is($r2->{headers}{'idempotent-replayed'}, 'true',
       '... Idempotent-Replayed: true');

    $r2 = place("\"$key\"", order_body(pm => 'pm_tok_other'));
    is($r2->{status}, 422, 'the same key with another body: 422');
    is(decode($r2->{body})->{error}, 'idempotency_key_reused',
       '... idempotency_key_reused');

    $r2 = place("\"$key\"", $body, sub => 'user-2');
    is($r2->{status}, 202, "another user's same key is his own: 202");
    isnt(decode($r2->{body})->{order_id}, $a->{order_id}, '... a new order');

    is(scalar(with_key($key)), 2, 'Kafka has one order per user');

    my $ttl = 0;
    for my $k (@{ $t->redis_cmd('KEYS', 'idem:*') }) {
        my %h = @{ $t->redis_cmd('HGETALL', $k) };
        next unless ($h{body} // '') eq $r->{body};
        is($h{state}, 'done', 'the record is done');
        is($h{status}, '202', '... with its status');
        is($h{location}, $r->{headers}{location}, '... its Location');
        $ttl = $t->redis_cmd('PTTL', $k);
    }
    ok($ttl > 3_500_000 && $ttl <= 3_600_000,
       "it lives for commerce_idempotency_ttl 1h (PTTL $ttl)");
}

# ------------------------------------------------ ids from two workers ---

# Order ids and trace ids come from a random buffer in each worker
# (ngx_http_commerce_random): 60 orders over new connections, spread over
# both workers, never share one.
{
    my (%ids, %traces);
    for my $i (1 .. 60) {
        my $key = "ids-$i-$tag";
        my $r = place("\"$key\"", order_body());
        $ids{ decode($r->{body})->{order_id} // "none-$i" }++
            if $r->{status} == 202;
    }
    is(scalar(keys %ids), 60, '60 orders, 60 distinct order ids');
    is(scalar(grep { !/$UUID/ } keys %ids), 0, '... each a UUIDv7');
    for my $m (grep { ($_->{h}{idempotency_key} // '') =~ /^ids-\d+-$tag$/ }
               msgs())
    {
        $traces{ substr($m->{h}{traceparent} // '', 3, 32) }++;
    }
    is(scalar(keys %traces), 60, '... and 60 distinct trace ids in Kafka');
}

# ------------------------------------------- concurrent duplicates ---

{
    my $key = "concurrent-$tag";
    my $body = order_body(items => [ { sku => 'SKU-B', quantity => 3 } ]);
    my $dir = $t->dir;
    my @pids;

    for my $i (1 .. 12) {
        push @pids, $t->fork_child(sub {
            my $r = place("\"$key\"", $body);
            open my $fh, '>', "$dir/conc.$i" or die;
            print {$fh} "$r->{status} $r->{body}";
            close $fh;
        });
    }
    waitpid $_, 0 for @pids;

    my (%status, %ids);
    for my $i (1 .. 12) {
        my ($s, $b) = split / /, $t->slurp("$dir/conc.$i"), 2;
        $status{$s}++;
        $ids{ decode($b)->{order_id} }++ if $s == 202;
    }
    ok($status{202}, "12 concurrent duplicates: some 202 ("
       . join(', ', map { "$_: $status{$_}" } sort keys %status) . ')');
    is(scalar(grep { $_ != 202 && $_ != 409 } keys %status), 0,
       '... the others 409');
    is(scalar(keys %ids), 1, '... every 202 names the same order');
    is(scalar(with_key($key)), 1, '... and Kafka has exactly one command');
}

# ------------------------------------------------------- broker down ---

{
    my $key = "down-$tag";
    my $body = order_body(items => [ { sku => 'SKU-A', quantity => 7 } ]);

    $broker->control('down all');

    my $c = $t->conn(timeout => 40);
    $c->send_request(POST => '/v1/orders',
                     Authorization => 'Bearer ' . token('user-1', 0),
                     'Idempotency-Key' => "\"$key\"",
                     'Content-Type' => 'application/json', -body => $body);

    my $rk;
    ok(wait_for(sub {
        for my $k (@{ $t->redis_cmd('KEYS', 'idem:*') }) {
            my %h = @{ $t->redis_cmd('HGETALL', $k) };
            if (($h{state} // '') eq 'inflight') { $rk = $k; return 1 }
        }
        return 0;
    }), 'while the broker is down the record is in flight');

    my $r = place("\"$key\"", $body);
    is($r->{status}, 409, 'the same key meanwhile: 409');
    is(decode($r->{body})->{error}, 'request_in_progress',
       '... request_in_progress');
    ok(($r->{headers}{'retry-after'} // 0) > 0, '... with Retry-After');

    $r = $c->read_response;
    is($r->{status}, 503, 'the broker does not confirm: 503');
    is(decode($r->{body})->{error}, 'broker_unavailable',
       '... broker_unavailable');
    ok(($r->{headers}{'retry-after'} // 0) > 0, '... with Retry-After');
    # released on the delivery report's failure, which may follow the 503
    ok(wait_for(sub { !$t->redis_cmd('EXISTS', $rk) }),
       '... and the record released')
        or diag(explain($t->redis_cmd('HGETALL', $rk)));

    $broker->control('up all');

    my $status = 0;
    for (1 .. 40) {
        $r = place("\"$key\"", $body);
        $status = $r->{status};
        last if $status == 202;
        last unless $status == 503;
        sleep 0.25;
    }
    is($status, 202, 'the retry with the broker back: 202');

    my $r2 = place("\"$key\"", $body);
    is($r2->{headers}{'idempotent-replayed'}, 'true',
       'the next retry is a replay');
    is($r2->{body}, $r->{body}, '... of the same answer');
    is(scalar(with_key($key)), 1, 'the order was published exactly once');
}

# ------------------------------------------------------------- reads ---

my @ids = ('019aeb9c-4a1e-7c3d-9f21-5d0e3b6a7c11',
           '019aeb9c-4a1f-7c3d-9f21-5d0e3b6a7c12',
           '019aeb9c-4a20-7c3d-9f21-5d0e3b6a7c13');
my %doc;
for my $i (0 .. 2) {
    my $st = $i == 1 ? 'confirmed' : 'pending';
    $doc{ $ids[$i] } = qq({"order_id":"$ids[$i]","sub":"user-9","status":)
                       . qq("$st","lines":[{"sku":"SKU-A","quantity":1}],)
                       . qq("version":1});
    $t->redis_cmd('SET', "ord:order:$ids[$i]", $doc{ $ids[$i] });
    $t->redis_cmd('ZADD', 'ord:user:user-9', 0, $ids[$i]);
    $t->redis_cmd('ZADD', "ord:ustatus:$st:user-9", 0, $ids[$i]);
}

{
    my $id = $ids[0];
    my $r = req(GET => "/v1/orders/$id", sub => 'user-9');
    is($r->{status}, 200, 'GET /v1/orders/{id}: 200');
    is($r->{body}, $doc{$id}, '... the document as stored');
    like($r->{headers}{etag} // '', qr/^"[0-9a-f]{16}"$/, '... a strong ETag');
    is($r->{headers}{'cache-control'}, 'no-store', '... no-store');

    my $r2 = req(GET => "/v1/orders/$id", sub => 'user-9',
                 h => [ 'If-None-Match' => $r->{headers}{etag} ]);
    is($r2->{status}, 304, 'If-None-Match with it: 304');

    $r2 = req(GET => "/v1/orders/$id", sub => 'user-1');
    is($r2->{status}, 404, "another user's order: 404");
    $r2 = req(GET => "/v1/orders/$id", sub => 'user-1', admin => 1);
    is($r2->{status}, 200, '... an admin reads it');
    is(req(GET => "/v1/orders/019aeb9c-0000-7000-8000-000000000000",
           sub => 'user-9')->{status}, 404, 'no such order: 404');
    is(req(GET => '/v1/orders/not-a-uuid', sub => 'user-9')->{status}, 404,
       'an id that is no UUID: 404');
    $r2 = req(POST => "/v1/orders/$id", sub => 'user-9');
    is($r2->{status}, 405, 'POST on an order: 405');
    is($r2->{headers}{allow}, 'GET, HEAD', '... Allow: GET, HEAD');
    is(req(GET => "/v1/orders/$id")->{status}, 401, 'no caller: 401');
}

{
    my $r = req(GET => '/v1/orders?limit=2', sub => 'user-9');
    is($r->{status}, 200, 'GET /v1/orders: 200');
    my $p = decode($r->{body});
    is_deeply([ map { $_->{order_id} } @{ $p->{items} } ],
              [ $ids[2], $ids[1] ], '... newest first, limit 2');
    is($p->{next_cursor}, $ids[1], '... next_cursor the last id');

    $p = decode(req(GET => "/v1/orders?limit=2&cursor=$p->{next_cursor}",
                    sub => 'user-9')->{body});
    is_deeply([ map { $_->{order_id} } @{ $p->{items} } ], [ $ids[0] ],
              'the next page');
    is($p->{next_cursor}, undef, '... the last one');

    $p = decode(req(GET => '/v1/orders?status=confirmed',
                    sub => 'user-9')->{body});
    is_deeply([ map { $_->{order_id} } @{ $p->{items} } ], [ $ids[1] ],
              '?status=confirmed');

    $p = decode(req(GET => '/v1/orders', sub => 'user-8')->{body});
    is_deeply($p, { items => [], next_cursor => undef },
              'a user without orders: an empty page');

    for my $q ('limit=0', 'limit=101', 'limit=x', 'status=shipped',
               'cursor=abc') {
        my $r = req(GET => "/v1/orders?$q", sub => 'user-9');
        is($r->{status}, 400, "?$q: 400");
    }
}

{
    my $id = $ids[0];
    my @ev = ('{"seq":1,"at":"2026-12-04T19:00:00.123Z","step":"placed",'
              . '"outcome":"ok","detail":null}',
              '{"seq":2,"at":"2026-12-04T19:00:00.200Z","step":"reserved",'
              . '"outcome":"failed","detail":"out of stock"}');
    $t->redis_cmd('RPUSH', "ord:events:$id", @ev);

    my $r = req(GET => "/v1/orders/$id/events", sub => 'user-9');
    is($r->{status}, 200, 'GET /v1/orders/{id}/events: 200');
    is($r->{body}, qq({"order_id":"$id","events":[) . join(',', @ev) . ']}',
       '... the history, oldest first');
    is(req(GET => "/v1/orders/$id/events", sub => 'user-1')->{status}, 404,
       "... another user's: 404");
}

# ------------------------------------------------------------ cancel ---

{
    my $id = $ids[2];
    my $r = req(POST => "/v1/orders/$id/cancel", sub => 'user-9',
                body => '{"reason":"changed my mind"}');
    is($r->{status}, 202, 'POST /v1/orders/{id}/cancel: 202');
    my $a = decode($r->{body});
    is($a->{order_id}, $id, '... the order id');
    like($a->{command_id} // '', $UUID, '... the command id');

    my ($m) = grep { ($_->{h}{command_id} // '') eq ($a->{command_id} // '-') }
              msgs();
    ok($m, 'order.cancel in Kafka');
    is($m->{key}, $id, '... keyed by the order id');
    is($m->{h}{command_type}, 'order.cancel', '... command_type');
    my $v = decode($m->{value} // '');
    is($v->{reason}, 'changed my mind', '... the reason');
    is($v->{by}, 'owner', '... by the owner');

    is(req(POST => "/v1/orders/$id/cancel", sub => 'user-1')->{status}, 404,
       "another user's order: 404");
    $r = req(POST => "/v1/orders/$id/cancel", sub => 'user-1', admin => 1);
    is($r->{status}, 202, '... an admin cancels it');
    is(req(POST => "/v1/orders/$id/cancel", sub => 'user-9',
           body => '{"reason":5}')->{status}, 400, 'a reason not a string: 400');

    $t->redis_cmd('SET', "ord:order:$ids[1]",
                  qq({"order_id":"$ids[1]","sub":"user-9","status":"cancelled"}));
    $r = req(POST => "/v1/orders/$ids[1]/cancel", sub => 'user-9');
    is($r->{status}, 409, 'a cancelled order: 409');
    is(decode($r->{body})->{error}, 'order_not_cancellable',
       '... order_not_cancellable');
    is(req(GET => "/v1/orders/$id/cancel", sub => 'user-9')->{status}, 405,
       'GET on cancel: 405');
}

# ------------------------------------------------------------- admin ---

{
    my $sid = $ids[0];
    my $saga = qq({"order_id":"$sid","sub":"user-9","status":"failed",)
               . qq("step":"reserve","attempts":3,"version":4});
    $t->redis_cmd('SET', "ord:saga:$sid", $saga);
    $t->redis_cmd('ZADD', 'ord:sagas:failed', 0, $sid);

    is(req(GET => '/v1/admin/sagas?status=failed', sub => 'user-1')->{status},
       403, 'admin API without the role: 403');
    is(decode(req(GET => '/v1/admin/sagas?status=failed',
                  sub => 'user-1')->{body})->{error}, 'insufficient_scope',
       '... insufficient_scope');

    my $r = req(GET => '/v1/admin/sagas?status=failed', sub => 'ops',
                admin => 1);
    is($r->{status}, 200, 'GET /v1/admin/sagas?status=failed: 200');
    is($r->{body}, qq({"items":[$saga],"next_cursor":null}), '... the saga');
    is(req(GET => '/v1/admin/sagas', sub => 'ops', admin => 1)->{status}, 400,
       '... without a status: 400');

    $r = req(GET => "/v1/admin/sagas/$sid", sub => 'ops', admin => 1);
    is($r->{status}, 200, 'GET /v1/admin/sagas/{id}: 200');
    is($r->{body}, $saga, '... as stored');
    is(req(GET => "/v1/admin/sagas/$ids[2]", sub => 'ops',
           admin => 1)->{status}, 404, 'no such saga: 404');

    for my $action ('retry', 'compensate') {
        $r = req(POST => "/v1/admin/sagas/$sid/$action", sub => 'ops',
                 admin => 1);
        is($r->{status}, 202, "POST /v1/admin/sagas/{id}/$action: 202");
        my $cid = decode($r->{body})->{command_id} // '-';
        my ($m) = grep { ($_->{h}{command_id} // '') eq $cid } msgs();
        is($m && $m->{h}{command_type}, "saga.$action", "... saga.$action");
        is($m && $m->{key}, $sid, '... keyed by the order id');
        is($m && $m->{h}{sub}, 'ops', '... by the admin');
        is(req(POST => "/v1/admin/sagas/$ids[2]/$action", sub => 'ops',
               admin => 1)->{status}, 404, '... of no saga: 404');
    }

    $r = req(POST => '/v1/admin/projections/rebuild', sub => 'ops',
             admin => 1, body => '{"projection":"orders"}');
    is($r->{status}, 202, 'POST /v1/admin/projections/rebuild: 202');
    my $cid = decode($r->{body})->{command_id} // '-';
    my ($m) = grep { ($_->{h}{command_id} // '') eq $cid } msgs();
    is($m && $m->{h}{command_type}, 'projections.rebuild',
       '... projections.rebuild');
    is($m && $m->{key}, undef, '... without a key');
    is(decode($m ? $m->{value} : '')->{projection}, 'orders',
       '... of the orders projection');
    is(req(POST => '/v1/admin/projections/rebuild', sub => 'ops', admin => 1,
           body => '{"x":1}')->{status}, 400, '... a bad body: 400');
    is(req(POST => '/v1/admin/projections/rebuild',
           sub => 'user-1')->{status}, 403, '... not an admin: 403');
}


# ---------------------------------------------------------- checkout ---

{
    my $new_cart = sub {
        my ($sub, @lines) = @_;
        my $r = req(POST => '/v1/carts', sub => $sub,
                    body => '{"store_id":"store-1"}');
        my ($id) = ($r->{headers}{location} // '') =~ m{/v1/carts/(\w+)$};
        while (my ($sku, $q) = splice @lines, 0, 2) {
            req(PUT => "/v1/carts/$id/items/$sku", sub => $sub,
                body => qq({"quantity":$q}));
        }
        return $id;
    };

    my $cart = $new_cart->('user-c', 'SKU-B', 1, 'SKU-A', 2);
    ok($cart, 'a cart with two lines');
    my $pay = '{"shipping_address":{"city":"Lyon"},"payment_method":"pm_tok"}';
    my $path = "/v1/carts/$cart/checkout";

    my $r = req(POST => $path, sub => 'user-c', body => $pay);
    is($r->{status}, 400, 'checkout without an Idempotency-Key: 400');

    $r = req(POST => $path, sub => 'user-d', key => "\"co-$tag\"",
             body => $pay);
    is($r->{status}, 404, "another user's cart: 404");

    $r = req(POST => $path, sub => 'user-c', key => "\"co-$tag\"",
             body => '{"store_id":"store-1","shipping_address":{},'
                     . '"payment_method":"pm_tok"}');
    is($r->{status}, 400, 'a checkout body with a store: 400');
    is(decode($r->{body})->{field}, 'store_id', '... naming it');

    # a publish that fails keeps the cart
    $broker->control('down all');
    $r = req(POST => $path, sub => 'user-c', key => "\"co-$tag\"",
             body => $pay);
    is($r->{status}, 503, 'checkout with the broker down: 503');
    $broker->control('up all');

    ok(wait_for(sub { !@{ $t->redis_cmd('KEYS', 'idem:*') } ||
                      !grep { my %h = @{ $t->redis_cmd('HGETALL', $_) };
                              ($h{state} // '') eq 'inflight' }
                        @{ $t->redis_cmd('KEYS', 'idem:*') } }),
       '... its record released');
    $r = req(GET => "/v1/carts/$cart", sub => 'user-c');
    is($r->{status}, 200, '... and the cart kept');
    is(scalar @{ decode($r->{body})->{items} // [] }, 2, '... with its lines');

    my $status = 0;
    for (1 .. 40) {
        $r = req(POST => $path, sub => 'user-c', key => "\"co-$tag\"",
                 body => $pay);
        $status = $r->{status};
        last unless $status == 503;
        sleep 0.25;
    }
    is($status, 202, 'checkout: 202');
    my $oid = decode($r->{body})->{order_id} // '';
    like($oid, $UUID, '... a new order id');
    is($r->{headers}{location}, "/v1/orders/$oid", '... its Location');

    my @m = with_key("co-$tag");
    is(scalar(@m), 1, 'one order.place in Kafka');
    my $v = decode($m[0] ? $m[0]{value} : '');
    is($v->{cart_id}, $cart, '... with the cart id');
    is($v->{store_id}, 'store-1', "... the cart's store");
    is_deeply($v->{lines}, [ { sku => 'SKU-A', quantity => 2 },
                             { sku => 'SKU-B', quantity => 1 } ],
              "... the cart's lines");
    is($v->{payment_method}, 'pm_tok', '... the payment method of the body');

    is(req(GET => "/v1/carts/$cart", sub => 'user-c')->{status}, 404,
       'the cart is gone once the broker has the order');

    my $r2 = req(POST => $path, sub => 'user-c', key => "\"co-$tag\"",
                 body => $pay);
    is($r2->{status}, 202, 'the same checkout again: the answer replayed');
    is($r2->{body}, $r->{body}, '... byte for byte');
    is($r2->{headers}{'idempotent-replayed'}, 'true',
       '... Idempotent-Replayed: true');
    is(scalar(with_key("co-$tag")), 1, '... and nothing published');

    my $empty = $new_cart->('user-c');
    $r = req(POST => "/v1/carts/$empty/checkout", sub => 'user-c',
             key => "\"co-empty-$tag\"", body => $pay);
    is($r->{status}, 422, 'an empty cart: 422');
    is(decode($r->{body})->{error}, 'empty_cart', '... empty_cart');

    # POST /v1/orders with a cart_id: the same checkout
    my $cart2 = $new_cart->('user-e', 'SKU-A', 3);
    my $by_id = qq({"cart_id":"$cart2","shipping_address":{"city":"Lyon"},)
                . '"payment_method":"pm_tok"}';

    $r = place("\"cid-other-$tag\"", $by_id, sub => 'user-d');
    is($r->{status}, 404, "POST /v1/orders with another user's cart_id: 404");
    is(decode($r->{body})->{error}, 'not_found', '... not_found');

    for my $both ([ items => [ { sku => 'SKU-A', quantity => 1 } ] ],
                  [ store_id => 'store-1' ]) {
        my $b = decode($by_id);
        $b->{ $both->[0] } = $both->[1];
        $r = place("\"cid-both-$tag\"", $JSON->encode($b), sub => 'user-e');
        is($r->{status}, 400, "cart_id and $both->[0]: 400");
        is(decode($r->{body})->{field}, $both->[0], '... naming it');
    }
    $r = place("\"cid-type-$tag\"", '{"cart_id":5,"shipping_address":{},'
               . '"payment_method":"pm_tok"}', sub => 'user-e');
    is($r->{status}, 400, 'a cart_id not a string: 400');
    is(decode($r->{body})->{field}, 'cart_id', '... naming it');

    $broker->control('down all');
    $r = place("\"cid-$tag\"", $by_id, sub => 'user-e');
    is($r->{status}, 503, 'cart_id with the broker down: 503');
    $broker->control('up all');
    is(scalar @{ decode(req(GET => "/v1/carts/$cart2",
                            sub => 'user-e')->{body})->{items} // [] }, 1,
       '... the cart kept');

    for (1 .. 40) {
        $r = place("\"cid-$tag\"", $by_id, sub => 'user-e');
        last unless $r->{status} == 503 || $r->{status} == 409;
        sleep 0.25;
    }
    is($r->{status}, 202, 'POST /v1/orders with a cart_id: 202');
    $oid = decode($r->{body})->{order_id} // '';
    is($r->{headers}{location}, "/v1/orders/$oid", '... its Location');
    @m = with_key("cid-$tag");
    is(scalar(@m), 1, '... one order.place in Kafka');
    $v = decode($m[0] ? $m[0]{value} : '');
    is($v->{cart_id}, $cart2, '... with the cart id');
    is($v->{store_id}, 'store-1', "... the cart's store");
    is_deeply($v->{lines}, [ { sku => 'SKU-A', quantity => 3 } ],
              "... the cart's lines");
    is(req(GET => "/v1/carts/$cart2", sub => 'user-e')->{status}, 404,
       '... and the cart is gone');
}

# --------------------------------------- the shipped commerce-orders.conf ---

{
    my $port = $t->port('SHIPPED');
    my $sreq = sub {
        my ($method, $path, %o) = @_;
        my @h;
        push @h, Authorization => 'Bearer ' . token($o{sub}, $o{admin} // 0)
            if defined $o{sub};
        push @h, 'Idempotency-Key' => $o{key} if defined $o{key};
        return $t->http($method => $path, @h, -port => $port, -timeout => 40,
                        defined $o{body} ? (-body => $o{body}) : ());
    };

    my $r = $sreq->(POST => '/v1/orders', sub => 'ship-1',
                    key => "\"ship-$tag\"", body => order_body());
    is($r->{status}, 202, 'shipped: POST /v1/orders 202');
    ok(defined $r->{headers}{'ratelimit-remaining'},
       'shipped: the per-user rate limit applies');
    my $id = decode($r->{body})->{order_id} // '';
    is($sreq->(GET => '/v1/orders', sub => 'ship-1')->{status}, 200,
       'shipped: GET /v1/orders');
    is($sreq->(GET => "/v1/orders/$id", sub => 'ship-1')->{status}, 404,
       'shipped: GET an order not in the read model yet: 404');
    is($sreq->(GET => "/v1/orders/$id/nope", sub => 'ship-1')->{status}, 404,
       'shipped: another path under /v1/orders: 404');
    is($sreq->(GET => '/v1/orders')->{status}, 401,
       'shipped: no token: 401');
    is($sreq->(GET => '/v1/admin/sagas?status=failed',
               sub => 'ship-1')->{status}, 403,
       'shipped: the admin API without the role: 403');
    is($sreq->(GET => '/v1/admin/sagas?status=failed', sub => 'ship-ops',
               admin => 1)->{status}, 200,
       'shipped: ... with it: 200');
    is($sreq->(POST => '/v1/admin/projections/rebuild', sub => 'ship-ops',
               admin => 1)->{status}, 202,
       'shipped: POST /v1/admin/projections/rebuild 202');
}

# ------------------------------------------------------- rate limit ---

{
    my @s = map { place("\"lim-$_-$tag\"", order_body(),
                        path => '/limited/orders', sub => 'user-lim')->{status} }
            1 .. 3;
    is($s[0], 202, 'commerce_limit per user: the first order passes');
    is($s[2], 429, '... the burst spent: 429');
    is(place("\"lim-x-$tag\"", order_body(), path => '/limited/orders',
             sub => 'user-other')->{status}, 202, '... another user passes');
}

# ----------------------------------------------------- Redis frozen ---

# The claims sent while Redis is frozen time out (503); Redis runs them
# when it thaws.  They must create no record then: nobody is publishing
# those orders, and the record would answer their retries 409 for
# commerce_idempotency_inflight_ttl (30 s here).
{
    my @keys = map { "frozen-$_-$tag" } 1 .. 4;
    $t->pause_redis;
    my @during = map { place("\"$_\"", order_body())->{status} } @keys;
    sleep 1;
    $t->resume_redis;
    ok(!grep({ $_ == 202 } @during),
       "Redis frozen: no order taken (@during)");
    ok(wait_for(sub { defined $t->redis_cmd('PING') }, 100), 'Redis thawed');

    my %seen;
    for my $key (@keys) {
        my $s = 0;
        for (1 .. 100) {
            $s = place("\"$key\"", order_body())->{status};
            $seen{$s}++;
            last if $s == 202 || $s == 409;
            sleep 0.05;
        }
        is($s, 202, "$key retried after the freeze: 202");
    }
    ok(!$seen{409}, 'no 409 request_in_progress after Redis is back')
        or diag(explain \%seen);
}

# ------------------------------------------------------- Redis down ---

{
    $t->stop_redis;

    my $t0 = time;
    my $r = place("\"redis-down-$tag\"", order_body());
    is($r->{status}, 503, 'Redis down: POST /v1/orders 503');
    ok(time - $t0 < 2, '... at once');
    ok(($r->{headers}{'retry-after'} // 0) > 0, '... with Retry-After');
    is(req(GET => "/v1/orders/$ids[0]", sub => 'user-9')->{status}, 503,
       '... and the reads 503');

    $t->start_redis;
    seed();
    my $status = 0;
    ok(wait_for(sub {
        $status = place("\"redis-down-$tag\"", order_body())->{status};
        $status != 503
    }, 100), 'Redis back: taken again');
    is($status, 202, '... 202');
}

$t->done;
