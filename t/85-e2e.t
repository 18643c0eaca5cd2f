#!/usr/bin/perl

# The whole loop, through the real path: a signed webhook enters nginx, is
# published to Kafka (202 only after the broker ack), the projector stores
# it in PostgreSQL and projects it to Redis, and a GET through nginx shows
# it.  Redelivery of the same webhook changes nothing.

use strict;
use warnings;

use Digest::SHA qw(hmac_sha256 hmac_sha256_base64);
use JSON::PP;
use MIME::Base64;
use Test::More;
use Time::HiRes qw(time);

use lib 't/lib';
use CommerceProj;

my $p = CommerceProj->new;
my $t = $p->t;

BAIL_OUT('nginx module not built: ' . $t->module_path)
    unless -f $t->module_path;

my $key = 'e2e-test-secret-0123456789abcdef';
my $secret = 'whsec_' . encode_base64($key, '');
my $brokers = $p->brokers;
my $shopify_secret = 'shpss_e2e_0123456789';

$t->write_nginx_conf(<<"EOF");
    commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;
    commerce_kafka_brokers $brokers;

    server {
        listen 127.0.0.1:%%PORT_HTTP%%;

        location ~ ^/v1/webhooks/(?<source>canonical)\$ {
            commerce_webhook \$source;
            commerce_webhook_signature standard;
            commerce_webhook_secret $secret;
            commerce_webhook_key \$http_x_merchant_id;
            commerce_webhook_dedup on;
        }

        location = /v1/webhooks/shopify {
            commerce_webhook shopify;
            commerce_webhook_signature shopify;
            commerce_webhook_secret $shopify_secret;
            commerce_webhook_key \$http_x_shopify_shop_domain;
            commerce_webhook_header topic \$http_x_shopify_topic;
            commerce_webhook_dedup on;
        }

        location ~ ^/v1/catalog/(?<item_id>[^/]+)\$ {
            commerce_catalog_item \$item_id;
        }

        location ~ ^/v1/stores/(?<store_id>[^/]+)/inventory/(?<sku>[^/]+)\$ {
            commerce_inventory_item \$store_id \$sku;
        }
    }
EOF

my ($ok, $out) = $t->nginx_test_ok;
ok($ok, 'nginx -t') or diag($out);
$t->start_nginx;

my $proj = $p->start_projector;

my $json = JSON::PP->new->canonical;

# Standard Webhooks: v1,base64(HMAC-SHA256(key, "id.ts.body"))
sub post_webhook {
    my ($id, $body) = @_;
    my $ts = int(time);
    my $sig = encode_base64(hmac_sha256("$id.$ts.$body", $key), '');

    return $t->http(POST => '/v1/webhooks/canonical',
                    'Content-Type' => 'application/json',
                    'X-Merchant-Id' => 'merchant-e2e',
                    'webhook-id' => $id,
                    'webhook-timestamp' => $ts,
                    'webhook-signature' => "v1,$sig",
                    -body => $body);
}

sub get_json {
    my ($path) = @_;
    my $r = $t->http_get($path);
    return undef unless $r->{status} == 200;
    return eval { decode_json($r->{body}) };
}

my $upsert = $json->encode({ commands => [
    { type => 'item.upsert', item => {
        id => 'item-e2e', sku => 'SKU-E2E', name => 'Edge Runner',
        brand => 'Kestrel', tags => ['run'],
        variants => [ { sku => 'SKU-E2E-42', options => { size => '42' },
                        price => { amount => '120.00', currency => 'EUR' } } ],
        addon_groups => [] } },
    { type => 'stock.set', store_id => 'store-e2e', sku => 'SKU-E2E-42',
      on_hand => 7 } ] });

my $r = post_webhook('msg-e2e-1', $upsert);
is($r->{status}, 202, 'signed webhook accepted') or diag($r->{body});
my $ack = eval { decode_json($r->{body}) } // {};
is($ack->{status}, 'accepted', '202 body says accepted');

my $t0 = time;
ok($p->wait_for(sub { my $d = get_json('/v1/catalog/item-e2e');
                      $d && $d->{name} eq 'Edge Runner' }),
   'the item is visible through nginx');
diag(sprintf 'visible %.0f ms after the 202', (time - $t0) * 1000);

my $stock = get_json('/v1/stores/store-e2e/inventory/SKU-E2E-42');
ok($stock, 'stock visible through nginx');
is($stock->{on_hand}, 7, 'on_hand as sent') if $stock;

is($p->sql("SELECT count(*) FROM inbound_archive"), 1,
   'the raw webhook is archived once');
my $events = $p->sql('SELECT count(*) FROM event_store');
ok($events >= 2, "events stored ($events)");

# the same delivery again: deduplicated at the edge, nothing new anywhere
$r = post_webhook('msg-e2e-1', $upsert);
is($r->{status}, 200, 'redelivery answered 200');
my $dup = eval { decode_json($r->{body}) } // {};
is($dup->{status}, 'duplicate', 'redelivery is a duplicate');
is($dup->{offset}, $ack->{offset}, 'duplicate points at the first offset');

# a stock movement, then the read model moves forward
$r = post_webhook('msg-e2e-2', $json->encode(
    { type => 'stock.adjust', store_id => 'store-e2e', sku => 'SKU-E2E-42',
      delta => -3, reason => 'sale' }));
is($r->{status}, 202, 'stock delta accepted');

ok($p->wait_for(sub {
        my $s = get_json('/v1/stores/store-e2e/inventory/SKU-E2E-42');
        $s && $s->{on_hand} == 4 }),
   'stock delta visible through nginx');

is($p->sql("SELECT count(*) FROM inbound_archive"), 2,
   'two deliveries archived, the duplicate never reached Kafka');

# a forged webhook never reaches the pipeline
my $ts = int(time);
$r = $t->http(POST => '/v1/webhooks/canonical',
              'Content-Type' => 'application/json',
              'webhook-id' => 'msg-forged', 'webhook-timestamp' => $ts,
              'webhook-signature' => 'v1,' . encode_base64('x' x 32, ''),
              -body => $upsert);
is($r->{status}, 401, 'forged webhook rejected');

sleep 1;
is($p->sql("SELECT count(*) FROM inbound_archive"), 2,
   'nothing archived for the forged webhook');

# Shopify's own payload: X-Shopify-Topic reaches the projector's adapter
# as the Kafka header "topic" (commerce_webhook_header)
my $product = $json->encode({
    id => 788032119674292922, title => 'Example T-Shirt',
    body_html => 'An example T-Shirt', vendor => 'Acme',
    product_type => 'Shirts', tags => 'example, mens, t-shirt',
    updated_at => '2026-11-21T10:00:00-05:00',
    variants => [ { id => 642667041472713922, product_id => 788032119674292922,
                    title => 'Small', price => '19.99', sku => 'EX-TS-S',
                    inventory_item_id => 457924702, option1 => 'Small' } ],
    options => [ { name => 'Size', values => ['Small'] } ] });

my $hmac = hmac_sha256_base64($product, $shopify_secret);
$hmac .= '=' x ((4 - length($hmac) % 4) % 4);

$r = $t->http(POST => '/v1/webhooks/shopify',
              'Content-Type' => 'application/json',
              'X-Shopify-Topic' => 'products/create',
              'X-Shopify-Shop-Domain' => 'acme.myshopify.com',
              'X-Shopify-Webhook-Id' => 'b54557e4-e2e-1',
              'X-Shopify-Hmac-Sha256' => $hmac,
              -body => $product);
is($r->{status}, 202, 'Shopify products/create accepted') or diag($r->{body});

ok($p->wait_for(sub {
        my $d = get_json('/v1/catalog/shopify-788032119674292922');
        $d && $d->{name} eq 'Example T-Shirt' }),
   'the Shopify product is visible through nginx');
is($p->sql("SELECT count(*) FROM dead_letters"), 0, 'nothing dead-lettered');

$p->stop;
$t->done;
