#!/usr/bin/perl

# commerce-projector: canonical and Shopify adapters into PostgreSQL and the
# Redis read model, idempotency, dead letters and replay, ordering guards,
# --rebuild. Runs without nginx: messages go straight into the broker.

use strict;
use warnings;

use JSON::PP;
use Test::More;

use lib 't/lib';
use CommerceProj;

my $p = CommerceProj->new;
my $json = JSON::PP->new->canonical;
my $proj = $p->start_projector;

sub events { $p->sql('SELECT count(*) FROM event_store') }
sub stock {
    my ($store, $sku) = @_;
    my $v = $p->redis('HGET', "inv:$store", $sku);
    return defined $v ? decode_json($v) : undef;
}
sub item {
    my $v = $p->redis('GET', "cat:item:$_[0]");
    return defined $v ? decode_json($v) : undef;
}
sub canonical {
    my ($delivery, $body, $key) = @_;
    $p->produce(key => $key // 'm-1', body => ref $body ? encode_json($body) : $body,
                headers => [source => 'canonical', delivery_id => $delivery,
                            received_at => int(Time::HiRes::time() * 1000)]);
}

# --- canonical: item with variants and addons, price override, stock -----

canonical('d-1', { commands => [
    { type => 'item.upsert', item => {
        id => 'item-1', sku => 'SKU-1', name => 'Trail Shoe', brand => 'Kestrel',
        tags => ['run'],
        variants => [
            { sku => 'SKU-1-S', options => { size => 'S' },
              price => { amount => '89.90', currency => 'EUR' } },
            { sku => 'SKU-1-M', options => { size => 'M' },
              price => { amount => '91', currency => 'EUR' } } ],
        addon_groups => [ { id => 'wrap', name => 'Gift wrap', min => 0, max => 1,
                            addons => [ { id => 'w1', name => 'Paper' } ] } ] } },
    { type => 'stock.set', store_id => 'store-001', sku => 'SKU-1-S', on_hand => 12 },
    { type => 'price.set', store_id => 'store-001', sku => 'SKU-1-S',
      price => { amount => '84.90', currency => 'EUR' } },
    { type => 'stock.adjust', store_id => 'store-001', sku => 'SKU-1-S',
      delta => -2, reason => 'sale' } ] });

ok($p->wait_for(sub { my $s = stock('store-001', 'SKU-1-S');
                      $s && $s->{on_hand} == 10 }), 'stock visible in redis');

my $doc = item('item-1');
is($doc->{name}, 'Trail Shoe', 'item document in cat:item:');
is($doc->{price}{amount}, '89.90', 'item price is the lowest base price');
is(scalar @{ $doc->{variants} }, 2, 'two variants');
is($doc->{variants}[1]{price}{amount}, '91.00', 'amounts normalised');
is($doc->{addon_groups}[0]{id}, 'wrap', 'addon group');
is_deeply($p->redis('ZRANGE', 'cat:index', 0, -1), ['item-1'], 'cat:index');

my $s = stock('store-001', 'SKU-1-S');
is($s->{available}, 10, 'available');
ok($s->{orderable}, 'orderable');
is($s->{price}{amount}, '84.90', 'store override is the effective price');
like($s->{updated_at}, qr/^\d{4}-\d\d-\d\dT[\d:.]+Z$/, 'updated_at');

is($p->sql("SELECT string_agg(event_type, ',' ORDER BY position) FROM event_store"),
   'catalog.item.updated,pricing.price.updated,pricing.price.updated,'
   . 'inventory.stock.changed,inventory.orderability.changed,'
   . 'pricing.price.updated,inventory.stock.changed', 'events in order');
is($p->sql("SELECT string_agg(movement || ':' || delta || ':' || on_hand_after"
           . " || ':' || reason, ' ' ORDER BY id) FROM stock_ledger"),
   'set:12:12:count adjust:-2:10:sale', 'stock ledger');

# Every event is published to commerce.events through the outbox.
ok($p->wait_for(sub { $p->sql('SELECT count(*) FROM outbox') == 0 }),
   'outbox drained');
my @ev = `kcat -C -b @{[ $p->brokers ]} -t commerce.events -e -q -f '%s\\n'`;
is(scalar @ev, 7, 'seven events on commerce.events');
is(decode_json($ev[0])->{event_id} =~ /^[0-9a-f-]{36}$/ ? 1 : 0, 1, 'event id');

# --- redelivery of the same webhook is applied once ----------------------

my $before = events();
canonical('d-1', { type => 'stock.adjust', store_id => 'store-001',
                   sku => 'SKU-1-S', delta => 5, reason => 'return' });
canonical('d-2', { type => 'stock.adjust', store_id => 'store-001',
                   sku => 'SKU-1-S', delta => 1, reason => 'return' });
ok($p->wait_for(sub { stock('store-001', 'SKU-1-S')->{on_hand} == 11 }),
   'next message applied');
is(events(), $before + 1, 'redelivered delivery id applied once');
# The batch's claim found d-1 claimed: the batch went again without it.
my ($again) = grep { /applied again without the messages applied before/ }
              split /\n/, $p->log_text('projector1');
like($again // '', qr/"why":"1 message\(s\) applied before"/,
     'the redelivery was left out of its batch');
is($p->sql('SELECT count(*) FROM inbound_archive'), 3, 'every message archived');

# --- invalid messages go to the DLQ without blocking the partition -------

canonical('bad-1', '{"type":"stock.set",');
canonical('bad-2', { type => 'stock.set', store_id => 'store-001', sku => 'SKU-1-M',
                     on_hand => -3 });
canonical('bad-3', { type => 'price.set', sku => 'SKU-1-M',
                     price => { amount => '1.999', currency => 'EUR' } });
canonical('bad-4', { type => 'stock.adjust', store_id => 'store-001',
                     sku => 'SKU-1-M', delta => -1, reason => 'sale' });
$p->produce(key => 'm-1', body => '{}', headers => { source => 'nowhere' });
canonical('d-3', { type => 'stock.set', store_id => 'store-001', sku => 'SKU-1-M',
                   on_hand => 4 });

ok($p->wait_for(sub { my $v = stock('store-001', 'SKU-1-M'); $v && $v->{on_hand} == 4 }),
   'valid message after invalid ones applied');
is($p->sql("SELECT string_agg(reason, ',' ORDER BY id) FROM dead_letters"),
   'invalid_json,negative_stock,invalid_amount,stock_underflow,unknown_source',
   'machine-readable reasons');
is($p->sql("SELECT encode(body, 'escape') FROM dead_letters WHERE reason = 'invalid_json'"),
   '{"type":"stock.set",', 'original bytes kept');
like($p->sql("SELECT headers::text FROM dead_letters WHERE reason = 'negative_stock'"),
     qr/"delivery_id".*"bad-2"/, 'original headers kept');
ok($p->wait_for(sub {
    my @d = `kcat -C -b @{[ $p->brokers ]} -t commerce.dlq -e -q -f '%h\\n'`;
    @d == 5 && (grep { /dlq_reason=stock_underflow/ } @d) }), 'copies on commerce.dlq');

# --- Shopify: inventory before its product -> DLQ -> replay after fix ---

my %shop = (source => 'shopify');
$p->produce(key => 'shop-1.myshopify.com', headers => [ %shop, topic => 'inventory_levels/update',
            delivery_id => 'shp-inv-1' ],
            body => '{"inventory_item_id":808950810,"location_id":655441491,'
                  . '"available":6,"updated_at":"2024-01-01T10:00:00-05:00"}');
ok($p->wait_for(sub { $p->sql("SELECT count(*) FROM dead_letters WHERE reason = 'unmapped_reference'") == 1 }),
   'inventory of an unknown item dead-lettered');

$p->produce(key => 'shop-1.myshopify.com', headers => [ %shop, topic => 'products/create',
            delivery_id => 'shp-prod-1' ],
            body => encode_json({ id => 632910392, title => 'IPod Nano - 8GB',
                body_html => '<p>It is</p>', vendor => 'Apple', product_type => 'Cult Products',
                tags => 'Emotive, Flash Memory', updated_at => '2024-01-01T09:00:00-05:00',
                options => [ { name => 'Color' } ],
                variants => [ { id => 808950810, sku => 'IPOD2008PINK', price => '199.00',
                                option1 => 'Pink', title => 'Pink',
                                inventory_item_id => 808950810 } ] }));
ok($p->wait_for(sub { item('shopify-632910392') }), 'shopify product projected');
is(item('shopify-632910392')->{variants}[0]{options}{Color}, 'Pink', 'options named');
is(item('shopify-632910392')->{price}{currency}, 'USD', 'shop currency');
is_deeply(item('shopify-632910392')->{tags}, ['Emotive', 'Flash Memory'], 'tags split');

my ($rc, $out) = $p->replay('--dlq-reason', 'unmapped_reference');
is($rc, 0, 'replay by reason') or diag($out);
ok($p->wait_for(sub { my $v = stock('shopify-location-655441491', 'IPOD2008PINK');
                      $v && $v->{on_hand} == 6 }), 'replayed inventory applied');
is(stock('shopify-location-655441491', 'IPOD2008PINK')->{price}{amount}, '199.00',
   'price on the stock value');
is($p->sql("SELECT replay_count FROM dead_letters WHERE reason = 'unmapped_reference'"), 1,
   'dead letter marked replayed');
($rc, $out) = $p->replay('--dlq-reason', 'unmapped_reference');
like($out, qr/"messages":0/, 'a replayed dead letter is not replayed twice');

# --- ordering: older source states and older versions never win ---------

canonical('o-1', { type => 'stock.set', store_id => 'store-002', sku => 'SKU-1-S',
                   on_hand => 5, as_of => '2024-06-01T12:00:00Z' });
canonical('o-2', { type => 'stock.set', store_id => 'store-002', sku => 'SKU-1-S',
                   on_hand => 9, as_of => '2024-06-01T11:00:00Z' });
canonical('o-3', { type => 'stock.set', store_id => 'store-002', sku => 'SKU-1-M',
                   on_hand => 1 });
ok($p->wait_for(sub { stock('store-002', 'SKU-1-M') }), 'ordering messages applied');
is(stock('store-002', 'SKU-1-S')->{on_hand}, 5, 'an older absolute count is ignored');
is($p->sql("SELECT on_hand FROM stock_levels WHERE store_id = 'store-002' AND sku = 'SKU-1-S'"),
   5, 'also in PostgreSQL');

# A value in Redis with a higher version (as if written by a later
# transaction of another projector) is not overwritten by an older one.
my $newer = '{"sku":"SKU-1-M","on_hand":77,"reserved":0,"available":77,'
          . '"orderable":true,"version":1000,"updated_at":"2030-01-01T00:00:00.000Z"}';
$p->redis('HSET', 'inv:store-002', 'SKU-1-M', $newer);
canonical('o-4', { type => 'stock.adjust', store_id => 'store-002', sku => 'SKU-1-M',
                   delta => 1, reason => 'return' });
ok($p->wait_for(sub { $p->sql("SELECT on_hand FROM stock_levels WHERE store_id = 'store-002'"
                              . " AND sku = 'SKU-1-M'") == 2
                      && $p->sql('SELECT count(*) FROM outbox') == 0 }), 'applied');
is($p->redis('HGET', 'inv:store-002', 'SKU-1-M'), $newer, 'newer version kept in redis');
$p->redis('HDEL', 'inv:store-002', 'SKU-1-M');

# --- a rejection inside a batch: the rest of the batch still applies -----

# One kcat run, so the three usually share a batch: the projector's fast
# path gives up on the batch at the underflow and applies it again message
# by message, dead-lettering only the middle one.
$p->produce_many({ source => 'canonical' },
    "store-003\t" . encode_json({ type => 'stock.adjust', store_id => 'store-003',
                                  sku => 'SKU-1-S', delta => 5, reason => 'receipt' }),
    "store-003\t" . encode_json({ type => 'stock.adjust', store_id => 'store-003',
                                  sku => 'SKU-1-S', delta => -100, reason => 'sale' }),
    "store-003\t" . encode_json({ type => 'stock.adjust', store_id => 'store-003',
                                  sku => 'SKU-1-S', delta => 1, reason => 'receipt' }));
ok($p->wait_for(sub { my $v = stock('store-003', 'SKU-1-S'); $v && $v->{on_hand} == 6 }),
   'valid messages around a rejected one applied');
is($p->sql("SELECT count(*) FROM dead_letters WHERE reason = 'stock_underflow'"
           . " AND detail LIKE '%store-003%'"), 1, 'only the underflow dead-lettered');
is($p->sql("SELECT string_agg(delta::text, ',' ORDER BY id) FROM stock_ledger"
           . " WHERE store_id = 'store-003'"), '5,1', 'ledger has the two movements');
ok($p->wait_for(sub { $p->sql('SELECT count(*) FROM outbox') == 0 }), 'outbox drained');

# --- stock commands of one batch on one key: the same as one by one -------

# One kcat run, so they usually share a batch, where the projector folds
# them over the stored level in one statement: an older count is stale,
# versions follow each other, orderability changes are recorded.
my $t4 = '2024-06-01T';
$p->produce_many({ source => 'canonical' }, map { "store-004\t" . encode_json($_) }
    { type => 'stock.set', store_id => 'store-004', sku => 'SKU-1-S',
      on_hand => 0, as_of => "${t4}10:00:00Z" },
    { type => 'stock.adjust', store_id => 'store-004', sku => 'SKU-1-S',
      delta => 3, reason => 'receipt' },
    { type => 'stock.set', store_id => 'store-004', sku => 'SKU-1-S',
      on_hand => 50, as_of => "${t4}09:00:00Z" },
    { type => 'stock.adjust', store_id => 'store-004', sku => 'SKU-1-S',
      delta => -3, reason => 'sale' },
    { type => 'stock.set', store_id => 'store-004', sku => 'SKU-1-S',
      on_hand => 7, as_of => "${t4}11:00:00Z" });
ok($p->wait_for(sub { my $v = stock('store-004', 'SKU-1-S');
                      $v && $v->{on_hand} == 7 }), 'folded stock visible');
is($p->sql("SELECT string_agg(movement || ':' || delta || ':' || on_hand_after"
           . " || ':' || reason, ' ' ORDER BY id) FROM stock_ledger"
           . " WHERE store_id = 'store-004'"),
   'set:0:0:count adjust:3:3:receipt adjust:-3:0:sale set:7:7:count',
   'ledger: every movement in order, the stale count left out');
is($p->sql("SELECT string_agg(version::text, ',' ORDER BY position) FROM event_store"
           . " WHERE aggregate_id = 'stock:store-004:SKU-1-S'"), '1,2,3,4',
   'stock event versions follow each other');
is($p->sql("SELECT string_agg(version || ':' || (data->>'orderable'), ','"
           . " ORDER BY position) FROM event_store"
           . " WHERE aggregate_id = 'orderability:store-004:SKU-1-S'"),
   '2:true,3:false,4:true', 'orderability changes recorded');
is($p->sql("SELECT on_hand || ':' || version || ':' || commerce_ts(source_ts)"
           . " FROM stock_levels WHERE store_id = 'store-004'"),
   "7:4:${t4}11:00:00.000Z", 'stored level, version and source time');
# A value's version is its level's plus its prices' (SKU-1-S has a base
# price).
is(stock('store-004', 'SKU-1-S')->{version},
   4 + $p->sql("SELECT COALESCE(sum(version), 0) FROM price_book"
               . " WHERE sku = 'SKU-1-S' AND store_id IN ('', 'store-004')"),
   'read model has the last version');
is($p->sql("SELECT count(*) FROM stock_ledger l JOIN event_store e"
           . " USING (event_id) WHERE l.store_id = 'store-004'"), 4,
   'each ledger row has its event');

# --- item upserts of one batch: the same as one by one --------------------

# One kcat run, so they usually share a batch: a stale upsert changes
# nothing, versions follow each other, the last upsert's variants stay.
my $t5 = '2024-07-01T';
sub upsert {    # one key: one partition, in this order
    my ($id, $as_of, $name, @skus) = @_;
    return "catalog\t" . encode_json({ type => 'item.upsert', as_of => "$t5$as_of",
        item => { id => $id, name => $name,
                  variants => [ map { { sku => $_ } } @skus ] } });
}
$p->produce_many({ source => 'canonical' },
    upsert('item-b1', '10:00:00Z', 'B1 first', 'SKU-B1-A', 'SKU-B1-B'),
    upsert('item-b2', '10:00:00Z', 'B2', 'SKU-B2-A'),
    upsert('item-b1', '09:00:00Z', 'B1 stale', 'SKU-B1-C'),
    upsert('item-b1', '11:00:00Z', 'B1 last', 'SKU-B1-A'));
ok($p->wait_for(sub { my $d = item('item-b1'); $d && $d->{name} eq 'B1 last'
                      && item('item-b2') }), 'upserted items visible');
is($p->sql("SELECT string_agg(version || ':' || (data->>'name'), ','"
           . " ORDER BY position) FROM event_store WHERE aggregate_id = 'item-b1'"),
   '1:B1 first,2:B1 last', 'item events in order, the stale upsert left out');
is($p->sql("SELECT version || ':' || name FROM products WHERE id = 'item-b1'"),
   '2:B1 last', 'the last upsert is stored');
is($p->sql("SELECT string_agg(sku, ',' ORDER BY sku) FROM variants"
           . " WHERE item_id = 'item-b1'"), 'SKU-B1-A', 'its variants only');
is($p->sql("SELECT string_agg(sku || ':' || item_id, ',' ORDER BY sku) FROM variants"
           . " WHERE sku LIKE 'SKU-B%'"), 'SKU-B1-A:item-b1,SKU-B2-A:item-b2',
   'no variant left behind');

# A sku passed from one item to another, in the same batch or not: the
# item it left changed too, and its document in Redis with it (which the
# --rebuild check below compares).
$p->produce_many({ source => 'canonical' },
    upsert('item-c1', '10:00:00Z', 'C1', 'SKU-C-X', 'SKU-C-Y'),
    upsert('item-c2', '10:00:00Z', 'C2', 'SKU-C-X'));
ok($p->wait_for(sub { my $d = item('item-c2'); $d && @{ $d->{variants} } }),
   'second item visible');
is($p->sql("SELECT string_agg(sku || ':' || item_id, ',' ORDER BY sku) FROM variants"
           . " WHERE sku LIKE 'SKU-C-%'"), 'SKU-C-X:item-c2,SKU-C-Y:item-c1',
   'the later item has the sku');
$p->produce_many({ source => 'canonical' },
    upsert('item-c1', '12:00:00Z', 'C1 again', 'SKU-C-Y', 'SKU-C-X'));
ok($p->wait_for(sub { $p->sql("SELECT item_id FROM variants WHERE sku = 'SKU-C-X'")
                      eq 'item-c1' }), 'and it can come back');
is($p->sql("SELECT string_agg(sku || ':' || position, ',' ORDER BY sku) FROM variants"
           . " WHERE item_id = 'item-c1'"), 'SKU-C-X:2,SKU-C-Y:1', 'in its place');
ok($p->wait_for(sub { my $d = item('item-c2'); $d && !@{ $d->{variants} } }),
   'the item it left is rendered again without it');
ok($p->wait_for(sub { $p->sql('SELECT count(*) FROM outbox') == 0 }), 'outbox drained');

# --- the stock value: the C renderer and the SQL view agree ---------------

# The values of the stock levels a batch writes are rendered in C
# (proj_stock_value); those a price change bumps, and --rebuild's, by the
# SQL view rm_stock_values. Both must give the same bytes: the --rebuild
# check below compares these, rendered in C (the prices come first, on
# the same partition, and find no level to bump: no price change renders
# them again). Skus and a store that need escaping, an override price, a
# base price and none, a level at zero.
my $rstore = 'store-"r"';
my @rsku = ('SKU-"q"', 'SKU-\\b\\', 'SKU:{a},[b]',
            "\x{dc}n\x{ef}c\x{f8}d\x{e9}-\x{2713}", 'SKU-NOPRICE');
# Prices and stock are for skus of an item (proj_known.h): it comes first.
$p->produce_many({ source => 'canonical' }, "m-1\t" . encode_json({
    type => 'item.upsert', item => { id => 'item-render', name => 'Render',
        variants => [ map { { sku => $_ } } @rsku ] } }));
$p->produce_many({ source => 'canonical' },
    (map { "m-1\t" . encode_json({ type => 'price.set', sku => $_,
                                   price => { amount => '10', currency => 'EUR' } }) }
     @rsku[0 .. 3]),
    "m-1\t" . encode_json({ type => 'price.set', sku => $rsku[0], store_id => $rstore,
                            price => { amount => '9.5', currency => 'EUR' } }));
$p->produce_many({ source => 'canonical' }, map {
    "m-1\t" . encode_json({ type => 'stock.set', store_id => $rstore, sku => $rsku[$_],
                            on_hand => $_ == 2 ? 0 : 3 + $_ }) } 0 .. $#rsku);
my %rbytes = map { my $b = $_; utf8::encode($b); ($_ => $b) } @rsku;
ok($p->wait_for(sub { !grep { !defined $p->redis('HGET', "inv:$rstore", $rbytes{$_}) }
                      @rsku }), 'stock values of the render check written');
is(decode_json($p->redis('HGET', "inv:$rstore", $rbytes{$rsku[0]}))->{price}{amount},
   '9.50', 'the override is the effective price');
ok(!defined decode_json($p->redis('HGET', "inv:$rstore", 'SKU-NOPRICE'))->{price},
   'no price: null');
ok($p->wait_for(sub { $p->sql('SELECT count(*) FROM outbox') == 0 }), 'outbox drained');

# --- --rebuild gives the live state --------------------------------------

sub snapshot {
    my %s;
    my $cursor = 0;
    do {
        my $r = $p->redis('SCAN', $cursor, 'COUNT', 1000);
        $cursor = $r->[0];
        for my $k (@{ $r->[1] }) {
            my $type = $p->redis('TYPE', $k);
            $s{$k} = $type eq 'string' ? $p->redis('GET', $k)
                   : $type eq 'hash' ? { @{ $p->redis('HGETALL', $k) } }
                   : $p->redis('ZRANGE', $k, 0, -1);
        }
    } while ($cursor ne '0');
    return \%s;
}

# The deleted field above is restored by the rebuild, so compare against
# PostgreSQL's rendering count and the rest byte for byte.
my $live = snapshot();
$p->redis('FLUSHALL');
($rc, $out) = $p->run($p->projector_args('--rebuild'));
is($rc, 0, 'rebuild exits 0') or diag($out);
my $rebuilt = snapshot();
my $missing = delete $rebuilt->{'inv:store-002'}{'SKU-1-M'};
ok($missing && decode_json($missing)->{on_hand} == 2, 'rebuild restores a lost value');
is_deeply($rebuilt, $live, 'rebuilt read model equals the live one');
for my $sku (@rsku) {
    my $c = $live->{"inv:$rstore"}{$rbytes{$sku}};
    ok(defined $c && $c eq $rebuilt->{"inv:$rstore"}{$rbytes{$sku}},
       "stock value of $rbytes{$sku}: C renderer and SQL view give the same bytes")
        or diag("C:   " . ($c // 'none') . "\nSQL: "
                . ($rebuilt->{"inv:$rstore"}{$rbytes{$sku}} // 'none'));
}

# --- clean shutdown --------------------------------------------------------

is($p->stop_proc($proj, 'TERM'), 0, 'SIGTERM: exit status 0');
unlike($p->log_text('projector1'), qr/"level":"error"/, 'no error in the log');

# --- a log that ends before what PostgreSQL consumed --------------------

# A recreated topic (or a broker that lost its data) starts again at a
# lower offset: starting at the stored one would skip, not apply, what it
# holds. The projector refuses and says what to do.
$p->sql("UPDATE consumer_offsets SET next_offset = next_offset + 1000");
($rc, $out) = $p->run('timeout', '60', $p->projector_args());
is($rc, 1, 'offsets past the end of the log: the projector stops')
    or diag($out);
like($out, qr/PostgreSQL has consumed up to offset \d+ but the log ends at/,
     'and says why');

$p->stop;
done_testing();
