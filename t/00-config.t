#!/usr/bin/perl

# Configuration of ngx_http_commerce_module: valid configs pass `nginx -t`,
# every mistake fails it with a message naming the directive and the line.

use strict;
use warnings;

use Test::More;
use lib 't/lib';
use CommerceTest;

my $t = CommerceTest->new;

my $n = 0;

# Writes the http{} text as its own config and runs nginx -t on it.
sub check {
    my ($http) = @_;

    my $name = 'c' . ++$n;
    $t->write_nginx_conf($http, name => $name);

    return $t->nginx_test_ok($name);
}


sub server {
    my ($locations) = @_;
    return "server {\n    listen 127.0.0.1:%%PORT_HTTP%%;\n$locations\n}\n";
}


my $READ = <<'EOF';
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
    }
EOF


sub ok_conf {
    my ($http, $what) = @_;
    my ($ok, $out) = check($http);
    ok($ok, "valid: $what") or diag($out);
}


# Fails nginx -t, and the output matches every regex given.
sub bad_conf {
    my ($http, $what, @re) = @_;

    my ($ok, $out) = check($http);

    ok(!$ok, "nginx -t fails: $what") or return;

    like($out, qr/\[emerg\]/, "$what: reported at emerg");
    like($out, qr/c$n\.conf:\d+/, "$what: message gives file and line");

    for my $re (@re) {
        like($out, $re, "$what: message matches $re");
    }
}


# ---- valid configurations ---------------------------------------------------

ok_conf("commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;\n" . server($READ),
        'the shipped read locations');

ok_conf(<<'EOF' . server($READ), 'every http-level directive set');
commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;
commerce_redis_pool_size 4;
commerce_redis_connect_timeout 250ms;
commerce_redis_reconnect_min 10ms;
commerce_redis_reconnect_max 5s;
commerce_redis_breaker_threshold 5;
commerce_redis_breaker_timeout 2s;
commerce_redis_timeout 1s;
commerce_cache_control "no-cache";
commerce_list_default_limit 10;
commerce_list_max_limit 20;
EOF

ok_conf(<<'EOF' . server($READ), 'server and location level settings');
commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;
server {
    listen 127.0.0.1:%%PORT_OTHER%%;
    commerce_redis_timeout 100ms;
    commerce_list_default_limit 5;
    commerce_list_max_limit 5;
    location / {
        commerce_list_max_limit 1000;
        commerce_list_default_limit 1000;
        commerce_catalog_list;
    }
}
EOF

ok_conf("commerce_redis_server [::1]:%%REDIS_PORT%%;\n" . server($READ),
        'IPv6 server address');

ok_conf("commerce_redis_server unix:%%TESTDIR%%/redis.sock;\n"
        . server($READ), 'unix socket server address');

ok_conf("commerce_redis_server localhost:%%REDIS_PORT%%;\n" . server($READ),
        'hostname resolved at config time');

ok_conf("commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;\n"
        . "commerce_redis_server 127.0.0.1:%%PORT_REDIS2%%;\n"
        . server($READ), 'several servers');

ok_conf(server("    location / { return 204; }"),
        'module loaded, no commerce directive at all');

ok_conf("commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;\n"
        . server("    location / { return 204; }"),
        'a server without read locations');

ok_conf("commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;\n" . server(<<'EOF'),
    location /fixed { commerce_catalog_item "fixed-id"; }
    location /arg { commerce_inventory_item "s-$arg_store" $arg_sku; }
    location /lit { commerce_inventory_list store-1; }
EOF
        'literal and composed complex values');


# ---- commerce_redis_server --------------------------------------------------

bad_conf(server($READ), 'read location without commerce_redis_server',
         qr/"commerce_redis_server" is not set/);

bad_conf("commerce_redis_server no-such-host.invalid:6379;\n" . server($READ),
         'unresolvable host', qr/commerce_redis_server/,
         qr/no-such-host\.invalid/);

bad_conf("commerce_redis_server 127.0.0.1:99999;\n" . server($READ),
         'port out of range', qr/commerce_redis_server/);

bad_conf("commerce_redis_server 127.0.0.1:abc;\n" . server($READ),
         'non-numeric port', qr/commerce_redis_server/);

bad_conf("commerce_redis_server;\n" . server($READ),
         'commerce_redis_server without address',
         qr/invalid number of arguments in "commerce_redis_server"/);

bad_conf("commerce_redis_server 127.0.0.1:1 127.0.0.1:2;\n" . server($READ),
         'commerce_redis_server with two addresses',
         qr/invalid number of arguments in "commerce_redis_server"/);

bad_conf(server("    commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;\n$READ"),
         'commerce_redis_server in server{}',
         qr/"commerce_redis_server" directive is not allowed here/);


# ---- pool, timeouts, breaker ------------------------------------------------

my $S = "commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;\n";

bad_conf("${S}commerce_redis_pool_size 0;\n" . server($READ),
         'pool_size 0', qr/commerce_redis_pool_size/);

bad_conf("${S}commerce_redis_pool_size many;\n" . server($READ),
         'pool_size not a number', qr/commerce_redis_pool_size/,
         qr/invalid/);

bad_conf("${S}commerce_redis_pool_size 1 2;\n" . server($READ),
         'pool_size with two values',
         qr/invalid number of arguments in "commerce_redis_pool_size"/);

bad_conf("${S}commerce_redis_pool_size 2;\ncommerce_redis_pool_size 3;\n"
         . server($READ), 'pool_size twice',
         qr/"commerce_redis_pool_size" directive is duplicate/);

bad_conf($S . server("    commerce_redis_pool_size 2;\n$READ"),
         'pool_size in server{}',
         qr/"commerce_redis_pool_size" directive is not allowed here/);

for my $d (qw(commerce_redis_connect_timeout commerce_redis_reconnect_min
              commerce_redis_reconnect_max commerce_redis_breaker_timeout
              commerce_redis_timeout))
{
    bad_conf("$S$d 5parsecs;\n" . server($READ), "$d invalid time",
             qr/"$d" directive invalid value/);

    bad_conf("$S$d;\n" . server($READ), "$d without value",
             qr/invalid number of arguments in "$d"/);

    bad_conf("$S$d 1s 2s;\n" . server($READ), "$d with two values",
             qr/invalid number of arguments in "$d"/);
}

bad_conf($S . server(<<"EOF"), 'commerce_redis_timeout invalid in location',
    location /x { commerce_redis_timeout -5; commerce_catalog_list; }
$READ
EOF
         qr/"commerce_redis_timeout" directive invalid value/);

bad_conf("${S}commerce_redis_breaker_threshold x;\n" . server($READ),
         'breaker_threshold not a number',
         qr/commerce_redis_breaker_threshold/, qr/invalid/);


# ---- list limits ------------------------------------------------------------

bad_conf("${S}commerce_list_default_limit 100;\ncommerce_list_max_limit 50;\n"
         . server($READ), 'default_limit > max_limit at http level',
         qr/commerce_list_(?:default|max)_limit/);

bad_conf($S . server(<<"EOF"), 'default_limit > max_limit in a location',
    location /x {
        commerce_list_default_limit 30;
        commerce_list_max_limit 20;
        commerce_catalog_list;
    }
$READ
EOF
         qr/commerce_list_(?:default|max)_limit/);

bad_conf("${S}commerce_list_default_limit 0;\n" . server($READ),
         'default_limit 0', qr/commerce_list_default_limit/);

bad_conf("${S}commerce_list_max_limit 0;\n" . server($READ),
         'max_limit 0', qr/commerce_list_(?:max|default)_limit/);

bad_conf("${S}commerce_list_max_limit lots;\n" . server($READ),
         'max_limit not a number', qr/commerce_list_max_limit/,
         qr/invalid/);


# ---- content handlers -------------------------------------------------------

bad_conf($S . server("    location /x { commerce_catalog_item; }"),
         'catalog_item without id',
         qr/invalid number of arguments in "commerce_catalog_item"/);

bad_conf($S . server("    location /x { commerce_catalog_item a b; }"),
         'catalog_item with two ids',
         qr/invalid number of arguments in "commerce_catalog_item"/);

bad_conf($S . server("    location /x { commerce_catalog_list extra; }"),
         'catalog_list with an argument',
         qr/invalid number of arguments in "commerce_catalog_list"/);

bad_conf($S . server("    location /x { commerce_inventory_item \$arg_s; }"),
         'inventory_item with one argument',
         qr/invalid number of arguments in "commerce_inventory_item"/);

bad_conf($S . server("    location /x { commerce_inventory_item a b c; }"),
         'inventory_item with three arguments',
         qr/invalid number of arguments in "commerce_inventory_item"/);

bad_conf($S . server("    location /x { commerce_inventory_list; }"),
         'inventory_list without store',
         qr/invalid number of arguments in "commerce_inventory_list"/);

bad_conf($S . server("    location /x { commerce_inventory_list a b; }"),
         'inventory_list with two stores',
         qr/invalid number of arguments in "commerce_inventory_list"/);

bad_conf($S . server("    commerce_catalog_list;\n$READ"),
         'catalog_list in server{}',
         qr/"commerce_catalog_list" directive is not allowed here/);

bad_conf("${S}commerce_catalog_item \$uri;\n" . server($READ),
         'catalog_item in http{}',
         qr/"commerce_catalog_item" directive is not allowed here/);

bad_conf($S . server(<<'EOF'), 'two content handlers in one location',
    location /x { commerce_catalog_list; commerce_catalog_item $arg_id; }
EOF
         qr/commerce_catalog_(?:list|item)/);

bad_conf($S . server("    location /x { commerce_cache_control; "
                     . "commerce_catalog_list; }"),
         'cache_control without value',
         qr/invalid number of arguments in "commerce_cache_control"/);

# a failing nginx -t logs nothing at alert level
my @alerts = grep { /\[alert\]/ }
             map { $t->bad_log_lines("$t->{dir}/c$_.t.log") } 1 .. $n;
ok(!@alerts, 'no alert from the nginx -t runs') or diag(join '', @alerts);

$t->done;
