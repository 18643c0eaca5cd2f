#!/usr/bin/perl
# The embedded stack (scripts/stack.sh, what `make up` runs) on a fresh
# machine: up starts redis-server, PostgreSQL, the migrations, the dev
# broker, the projector, nginx and the participant simulator in
# COMMERCE_RUN_DIR, creates one secret per webhook source and loads the
# demo catalog through signed webhooks; the simulator answers a payment
# command through the payments source;
# every webhook source verifies its scheme; Prometheus (COMMERCE_PROMETHEUS)
# scrapes nginx and the projector with the alert rules loaded; up again
# changes nothing;
# reload picks up a rotated secret; down stops everything; up after down
# brings the read model back from PostgreSQL and consumes the new broker.
#
# Runs on free non-default ports in a temp dir.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(hmac_sha256 hmac_sha256_hex);
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP;
use MIME::Base64 qw(decode_base64 encode_base64);
use Test::More;
use Time::HiRes qw(sleep time);

use CommerceTest;

my $repo = $CommerceTest::REPO;
my $build = $ENV{COMMERCE_BUILD} // "$repo/build";

for my $b (qw(commerce-devbroker commerce-migrate commerce-projector
               commerce-jwt commerce-participant-sim)) {
    plan skip_all => "$build/bin/$b not built (make workers)"
        unless -x "$build/bin/$b";
}
for my $tool (qw(openssl curl psql redis-server prometheus kcat)) {
    plan skip_all => "$tool not installed"
        unless system("command -v $tool >/dev/null 2>&1") == 0;
}

my $t = CommerceTest->new;
my $run = $t->dir . '/run';
my %port = map { $_ => $t->port($_) } qw(HTTP REDIS PG METRICS PROM SIM);
my $items = 12;

local $ENV{COMMERCE_RUN_DIR} = $run;
local $ENV{COMMERCE_HOST} = '127.0.0.1';
local $ENV{COMMERCE_HTTP_PORT} = $port{HTTP};
local $ENV{COMMERCE_REDIS_PORT} = $port{REDIS};
local $ENV{COMMERCE_PG_PORT} = $port{PG};
local $ENV{COMMERCE_METRICS_PORT} = $port{METRICS};
local $ENV{COMMERCE_SIM_METRICS_PORT} = $port{SIM};
local $ENV{COMMERCE_NGINX_WORKERS} = 2;
local $ENV{COMMERCE_DEMO_ITEMS} = $items;
local $ENV{COMMERCE_BUILD} = $build;
local $ENV{COMMERCE_PROMETHEUS} = 1;
local $ENV{COMMERCE_PROMETHEUS_PORT} = $port{PROM};

my $base = "http://127.0.0.1:$port{HTTP}";
my $ua = HTTP::Tiny->new(timeout => 10);
my $started;

sub stack {
    my ($cmd) = @_;
    my $out = `'$repo/scripts/stack.sh' $cmd 2>&1`;
    return ($? >> 8, $out);
}

sub get { return $ua->get("$base$_[0]") }

sub json_get {
    my $r = get($_[0]);
    return $r->{status} == 200 ? decode_json($r->{content}) : undef;
}

sub wait_for {
    my ($cond, $secs) = @_;
    my $deadline = time + ($secs // 30);
    while (time < $deadline) {
        return 1 if $cond->();
        sleep 0.1;
    }
    return 0;
}

sub secret {
    my ($source) = @_;
    open my $fh, '<', "$run/secrets/$source" or die "$source: $!";
    my ($s) = grep { !/^#/ && /\S/ } <$fh>;
    chomp $s;
    return $s;
}

sub pids {
    my %p;
    for my $f (qw(redis/redis.pid kafka/devbroker.pid projector/projector.pid
                  nginx/nginx.pid prometheus/prometheus.pid sim/sim.pid)) {
        open my $fh, '<', "$run/$f" or next;
        chomp($p{$f} = <$fh> // '');
    }
    return \%p;
}

sub listening {
    return IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $_[0],
                                 Proto => 'tcp', Timeout => 2) ? 1 : 0;
}

sub b64 { return encode_base64($_[0], '') }

# A secret of the source's format that is not in its file.
sub random_secret {
    my ($source) = @_;
    my $bytes = join '', map { chr int rand 256 } 1 .. 24;
    return $source =~ /^(canonical|standard|stripe|payments)$/
           ? 'whsec_' . b64($bytes) : unpack('H*', $bytes);
}

my $seq = 0;

# A request for a source, signed its provider's way ($bad: wrong secret).
sub signed {
    my ($source, $body, %o) = @_;

    my $secret = $o{secret} // secret($source);
    $secret = random_secret($source) if $o{bad};
    my $ts = time() =~ s/\..*//r;
    my $id = $o{id} // sprintf('msg_t90_%d_%d_%d', $$, time, ++$seq);
    my %h = ('Content-Type' => 'application/json',
             'X-Merchant-Id' => 'm-test');

    if ($source eq 'standard' || $source eq 'canonical') {
        my $key = decode_base64(substr($secret, length 'whsec_'));
        %h = (%h, 'webhook-id' => $id, 'webhook-timestamp' => $ts,
              'webhook-signature'
                  => 'v1,' . b64(hmac_sha256("$id.$ts.$body", $key)));
    } elsif ($source eq 'stripe' || $source eq 'payments') {
        $h{'Stripe-Signature'} = "t=$ts,v1="
            . hmac_sha256_hex("$ts.$body", $secret);
    } elsif ($source eq 'shopify') {
        %h = (%h, 'X-Shopify-Hmac-Sha256' => b64(hmac_sha256($body, $secret)),
              'X-Shopify-Webhook-Id' => $id,
              'X-Shopify-Shop-Domain' => 'test.myshopify.com',
              'X-Shopify-Topic' => 'products/update');
    } elsif ($source eq 'github') {
        %h = (%h, 'X-Hub-Signature-256'
                  => 'sha256=' . hmac_sha256_hex($body, $secret),
              'X-GitHub-Delivery' => $id, 'X-GitHub-Event' => 'push');
    } elsif ($source eq 'slack') {
        %h = (%h, 'X-Slack-Request-Timestamp' => $ts, 'X-Slack-Signature'
                  => 'v0=' . hmac_sha256_hex("v0:$ts:$body", $secret));
    } elsif ($source eq 'hmac') {
        %h = (%h, 'X-Signature' => 'sha256=' . hmac_sha256_hex($body, $secret),
              'X-Delivery-Id' => $id);
    }

    return $ua->post("$base/v1/webhooks/$source",
                     { headers => \%h, content => $body });
}

# Whatever happens, nothing started here outlives the test.
END {
    local $?;
    stack('down') if $started;
}

# ------------------------------------------------------------------ up ---

my ($rc, $out) = stack('up');
$started = 1;
is($rc, 0, 'stack.sh up on an empty run dir succeeds') or diag($out);
like($out, qr/loading $items demo items through POST \/v1\/webhooks\/canonical/,
     'the first up loads the demo data through the canonical webhook');

for my $s (qw(redis-server postgresql commerce-devbroker commerce-projector
              nginx commerce-participant-sim prometheus)) {
    like($out, qr/^\s+\Q$s\E\s+running \(pid \d+\)/m, "up reports $s running");
}

# ------------------------------------------------------------- secrets ---

for my $s (qw(canonical standard stripe shopify github slack hmac
              payments)) {
    my $f = "$run/secrets/$s";
    ok(-f $f, "secret file of $s created");
    is((stat $f)[2] & 0777, 0600, "secret file of $s is mode 600");
    my $v = secret($s);
    if ($s =~ /^(canonical|standard|stripe|payments)$/) {
        like($v, qr/^whsec_[A-Za-z0-9+\/]{32}$/, "$s: whsec_ + 24 bytes");
        is(length decode_base64(substr($v, 6)), 24, "$s: 24 random bytes");
    } else {
        like($v, qr/^[0-9a-f]{64}$/, "$s: 32 random bytes in hex");
    }
    like($out, qr/^\s+\Q$s\E\s+\Q$v\E$/m,
         "the first up prints the $s secret it created");
}
isnt(secret('standard'), secret('stripe'), 'every source has its own secret');

# ----------------------------------------------------------------- jwt ---

{
    my $jwt = "$build/bin/commerce-jwt";

    is((stat "$run/jwt/issuer.jwk")[2] & 0777, 0600,
       'the issuer\'s private key is mode 600');
    my $set = decode_json(CommerceTest->slurp("$run/jwt/jwks.json"));
    is(scalar @{ $set->{keys} }, 1, 'jwt/jwks.json holds one key');
    ok(!exists $set->{keys}[0]{d}, '... a public one');

    for my $who (qw(shopper admin)) {
        my ($token) = $out =~ /^\s+\Q$who\E\s+(\S+\.\S+\.\S+)$/m;
        ok($token, "up prints a $who token");

        open my $fh, '>', "$run/$who.token" or die $!;
        print {$fh} $token // '';
        close $fh;

        my $claims = `'$jwt' verify --jwks '$run/jwt/jwks.json' --issuer commerce-stack --audience commerce < '$run/$who.token'`;
        is($? >> 8, 0, "the $who token verifies with jwt/jwks.json");
        my $c = eval { decode_json((split /\n/, $claims)[1]) } // {};
        is($c->{sub}, "$who-1", "the $who token's sub");
        is(!!(grep { $_ eq 'admin' } @{ $c->{roles} // [] }), $who eq 'admin',
           "the $who token has the admin role only if it is the admin's");
        ok($c->{exp} > time + 23 * 3600, "the $who token is valid for a day");
    }

    like($out, qr/commerce-jwt sign --key \Q$run\E\/jwt\/issuer\.jwk/,
         'up says how to mint more tokens');

    my ($rc, $tokens) = stack('tokens');
    is($rc, 0, 'stack.sh tokens succeeds');
    like($tokens, qr/^\s+shopper\s+\S+\.\S+\.\S+$/m, '... and prints tokens');
}

# The printed example is a working signed request.
my ($example) = $out =~ /^\s+(curl -i \Q$base\E\/v1\/webhooks\/standard .*?--data-binary '[^']*')$/ms;
ok($example, 'up prints a signed curl for the standard source');
if ($example) {
    $example =~ s/\\\n//g;
    $example =~ s/^curl -i/curl -s -o \/dev\/null -w '%{http_code}'/;
    is(`$example`, '202', 'the printed curl example is accepted (202)');
}

# ----------------------------------------------------------- demo data ---

my $list = json_get("/v1/catalog?limit=200");
is(scalar @{ $list->{items} // [] }, $items, "GET /v1/catalog lists the $items demo items");
my $item = json_get('/v1/catalog/item-00001');
ok($item && @{ $item->{variants} } >= 2, 'item-00001 has variants');
ok($item && $item->{variants}[0]{price}{amount}, 'variants have prices');
is($item && $item->{merchant_id}, 'demo-merchant',
   'the merchant id came from the Kafka key (X-Merchant-Id)');
for my $store (qw(store-001 store-002 store-003)) {
    my $inv = json_get("/v1/stores/$store/inventory?count=100");
    ok($inv && @{ $inv->{items} } > 0, "$store has stock");
}
my $stock = json_get('/v1/stores/store-001/inventory/SKU-00001-S');
ok($stock && defined $stock->{on_hand} && $stock->{price},
   'stock of SKU-00001-S at store-001, with its price');

# a shopper's cart (conf/commerce-carts.conf) with the token up printed
{
    my $token = CommerceTest->slurp("$run/shopper.token");
    my %auth = (headers => { Authorization => "Bearer $token" });

    my $r = $ua->post("$base/v1/carts",
                      { %auth, content => '{"store_id":"store-001"}' });
    is($r->{status}, 201, 'the shopper makes a cart');
    my $cart = eval { decode_json($r->{content}) } // {};

    $r = $ua->put("$base/v1/carts/$cart->{id}/items/SKU-00001-S",
                  { %auth, content => '{"quantity":2}' });
    is($r->{status}, 200, 'two of SKU-00001-S in it');
    my $c = eval { decode_json($r->{content}) } // {};
    my $unit = $stock ? $stock->{price}{amount} : '';
    (my $minor = $unit) =~ s/\.//;
    is($c->{total}{amount_minor}, 2 * $minor,
       "the total: 2 x $unit, the store's price");

    $r = $ua->get("$base/v1/carts/$cart->{id}");
    is($r->{status}, 401, 'the cart API wants a token');
}

my $m = $ua->get("http://127.0.0.1:$port{METRICS}/metrics");
like($m->{content} // '', qr/^projector_messages_total\{result="applied"\} \d+/m,
     'the projector serves its metrics on COMMERCE_METRICS_PORT');

# ---------------------------------------------------------- prometheus ---

# The scrape targets as Prometheus sees them: { job => health }.
sub targets {
    my $r = $ua->get("http://127.0.0.1:$port{PROM}/api/v1/targets");
    return {} unless $r->{success};
    my $d = eval { decode_json($r->{content}) } // {};
    return { map { $_->{labels}{job} => $_->{health} }
             @{ $d->{data}{activeTargets} // [] } };
}

# The first scrape of a target comes within one scrape_interval (15 s).
ok(wait_for(sub { my $t = targets();
                  ($t->{projector} // '') eq 'up' && ($t->{nginx} // '') eq 'up'
                  && ($t->{'participant-sim'} // '') eq 'up'
                }, 60),
   'Prometheus scrapes nginx, the projector and the participant simulator') or diag(explain(targets()));
my $rules = $ua->get("http://127.0.0.1:$port{PROM}/api/v1/rules");
my @alerts = map { map { $_->{name} } @{ $_->{rules} } }
             @{ (eval { decode_json($rules->{content}) } // {})->{data}{groups}
                // [] };
ok((grep { $_ eq 'CommerceOutboxStuck' } @alerts),
   'with the alert rules of conf/prometheus loaded');

# ------------------------------------------------ a webhook end to end ---

my $adjust = encode_json({ type => 'stock.adjust', store_id => 'store-001',
                           sku => 'SKU-00001-S', delta => -1,
                           reason => 'sale', unit => 'each' });
my $r = signed('canonical', $adjust, id => 'msg_t90_adjust');
is($r->{status}, 202, 'a signed canonical webhook is accepted')
    or diag($r->{content});
ok(wait_for(sub {
        my $s = json_get('/v1/stores/store-001/inventory/SKU-00001-S');
        $s && $s->{on_hand} == $stock->{on_hand} - 1 }),
   'the projector applied it: GET shows the new stock');
$r = signed('canonical', $adjust, id => 'msg_t90_adjust');
is($r->{status}, 200, 'the same delivery again: 200');
like($r->{content}, qr/"status":"duplicate"/, '... as a duplicate');

# ------------------------------------------------- every source's scheme ---

my %body = (
    standard => '{"type":"order.created","data":{"id":"ord_1"}}',
    stripe => '{"id":"evt_t90_1","type":"payment_intent.succeeded"}',
    shopify => '{"id":1,"title":"t90"}',
    github => '{"zen":"t90"}',
    slack => '{"event_id":"Ev_t90_1","type":"event_callback"}',
    hmac => '{"event":"order.updated"}',
);
for my $s (sort keys %body) {
    $r = signed($s, $body{$s}, bad => 1);
    is($r->{status}, 401, "$s: a wrong signature is refused (401)");
    $r = signed($s, $body{$s});
    is($r->{status}, 202, "$s: a signature made with its secret file passes")
        or diag($r->{content});
    ok($r->{headers}{'ratelimit-limit'}, "$s: rate limited locally");
}
like(signed('standard', $body{standard})->{content}, qr/commerce\.webhooks/,
     'sources without a projector adapter publish to commerce.webhooks');

# the shopify source carries X-Shopify-Topic to the projector's adapter
my $product;
wait_for(sub { $product = json_get('/v1/catalog/shopify-1') });
is($product && $product->{name}, 't90',
   'the shopify products/update webhook is projected into the catalog');

# the demo items and that product
my $catalog = $items + 1;
is($ua->post("$base/v1/webhooks/nope", { content => '{}' })->{status}, 404,
   'an unknown source is 404');

# the participant simulator answers a payment command through the payments
# source, signed with the stack's secret for it
is(signed('payments', '{"id":"evt_t90_pay_1","type":"charge.refunded"}')
       ->{status}, 202, 'payments: a Stripe-signed webhook passes');
{
    open my $bf, '<', "$run/kafka/bootstrap" or die;
    chomp(my $bs = <$bf>);
    open my $k, '|-', 'kcat', '-P', '-b', $bs, '-t',
         'commerce.payments.commands', '-k', 'ord-t90' or die;
    print {$k} '{"type":"payment.authorize","order_id":"ord-t90",'
        . '"idempotency_key":"ord-t90:a","attempt":1,"amount":100,'
        . '"currency":"EUR","payment_method":"pm_t90"}';
    close $k or die;
}
my $sim_metric = 'participant_sim_webhooks_total{result="delivered"}';
ok(wait_for(sub {
       my $m = $ua->get("http://127.0.0.1:$port{SIM}/metrics");
       $m->{success} && $m->{content} =~ /^\Q$sim_metric\E 1$/m;
   }, 60), 'commerce-participant-sim answers payment.authorize through nginx');

# ------------------------------------------------------------ up again ---

my $before = pids();
($rc, $out) = stack('up');
is($rc, 0, 'a second up succeeds') or diag($out);
is_deeply(pids(), $before, 'a second up leaves every running service alone');
unlike($out, qr/loading .* demo items/, 'and does not load the demo again');
unlike($out, qr/nginx reloaded/, 'and does not reload nginx');
for my $s (qw(canonical standard stripe shopify github slack hmac)) {
    my $v = secret($s);
    unlike($out, qr/\Q$v\E/, "a second up does not print the $s secret");
}
like($out, qr/scripts\/stack\.sh secrets/, 'it says where to see them');
($rc, my $shown) = stack('secrets');
is($rc, 0, 'stack.sh secrets succeeds');
for my $s (qw(canonical standard stripe shopify github slack hmac)) {
    my $v = secret($s);
    like($shown, qr/^\s*\Q$s\E\s+\Q$v\E$/m, "stack.sh secrets shows $s");
}

# The shipped configurations start quietly: the projector warns about
# nothing in its own configuration, nginx logs from notice up (at info,
# every closed keepalive connection is a line).
my $plog = CommerceTest->slurp("$run/logs/projector.log");
unlike($plog, qr/"level":"warn"[^\n]*CONFWARN/,
       'conf/worker.conf: no configuration warning at start');
like(CommerceTest->slurp("$run/nginx/nginx.conf"),
     qr/^error_log \S+ notice;$/m, 'nginx logs at notice by default');
unlike(CommerceTest->slurp("$run/logs/nginx-error.log"), qr/\[info\]/,
       'no info lines in the nginx error log (keepalive closes)');
($rc) = stack('status');
is($rc, 0, 'status: everything runs');

# ------------------------------------------------ reload and rotation ---

my $old = secret('standard');
my $new = random_secret('standard');
{
    open my $fh, '>', "$run/secrets/standard" or die;
    print $fh "# rotated by t/90-stack.t\n$new\n$old\n";
}
is(signed('standard', $body{standard}, secret => $new)->{status}, 401,
   'a new secret is unknown before the reload');
($rc, $out) = stack('reload');
is($rc, 0, 'reload succeeds') or diag($out);
ok(wait_for(sub {
        signed('standard', $body{standard}, secret => $new)->{status} == 202 }),
   'after reload the new secret passes');
is(signed('standard', $body{standard}, secret => $old)->{status}, 202,
   'and the old one still does (rotation)');

# ---------------------------------------------------------------- down ---

($rc, $out) = stack('down');
is($rc, 0, 'down succeeds') or diag($out);
my $after = pids();
is_deeply($after, {}, 'down removes every pid file');
ok(!kill(0, $_), "pid $_ is gone") for values %$before;
ok(!listening($port{$_}), "nothing listens on the $_ port")
    for qw(HTTP REDIS PG METRICS PROM);
($rc) = stack('status');
isnt($rc, 0, 'status after down: not running');

# ------------------------------------------------- up after down ---

($rc, $out) = stack('up');
is($rc, 0, 'up after down succeeds') or diag($out);
like($out, qr/rebuilding the Redis read model from PostgreSQL \($catalog items\)/,
     'Redis started empty: the read model is rebuilt from PostgreSQL');
unlike($out, qr/loading .* demo items/, 'the demo data is not sent again');
is(scalar @{ (json_get("/v1/catalog?limit=200") // {})->{items} // [] },
   $catalog, 'the catalog is served again');
my $s1 = json_get('/v1/stores/store-001/inventory/SKU-00001-S');
is($s1 && $s1->{on_hand}, $stock->{on_hand} - 1, 'with the applied webhook');

# The new broker starts at offset 0: the projector must not skip it.
$r = signed('canonical', $adjust, id => 'msg_t90_adjust_2');
is($r->{status}, 202, 'a webhook to the new broker is accepted');
ok(wait_for(sub {
        my $s = json_get('/v1/stores/store-001/inventory/SKU-00001-S');
        $s && $s->{on_hand} == $stock->{on_hand} - 2 }),
   'and applied by the projector');

($rc, $out) = stack('down');
is($rc, 0, 'final down succeeds') or diag($out);
$started = 0;

# nginx must not have logged anything severe meanwhile.
my $errlog = CommerceTest->slurp("$run/logs/nginx-error.log");
unlike($errlog, qr/\[(alert|crit|emerg)\]/, 'no alert/crit/emerg in the nginx log');

done_testing();
