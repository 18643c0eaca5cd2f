#!/usr/bin/perl

# commerce-projector against hostile and unlucky input: delivery ids of
# any length deduplicated exactly, a dead letter too large for Kafka that
# must not stop the outbox, and validation: unknown skus parked until
# their item comes, ISO 4217 currencies, real dates, bounded quantities,
# reasons that are ours, and the edge's JSON rule for every source. Runs
# without nginx, like t/80.

use strict;
use warnings;

use IO::Socket::INET;
use JSON::PP;
use Test::More;

use lib 't/lib';
use CommerceProj;

my $p = CommerceProj->new;
my $mport = $p->t->port('METRICS');
my $proj = $p->start_projector('--metrics.port', $mport);

sub stock {
    my ($store, $sku) = @_;
    my $v = $p->redis('HGET', "inv:$store", $sku);
    return defined $v ? decode_json($v) : undef;
}
sub send_canonical {
    my ($delivery, $body, %o) = @_;
    $p->produce(key => $o{key} // 'm-1',
                body => ref $body ? encode_json($body) : $body,
                headers => [source => 'canonical',
                            defined $delivery ? (delivery_id => $delivery) : ()]);
}
sub outbox_empty { $p->sql('SELECT count(*) FROM outbox') == 0 }
sub metrics {
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$mport") or return '';
    print $s "GET /metrics HTTP/1.0\r\n\r\n";
    local $/;
    return <$s> // '';
}
sub consume {
    my ($topic, $fmt) = @_;
    return `kcat -C -b @{[ $p->brokers ]} -t $topic -e -q -f '$fmt'`;
}

# The catalog the stock and price messages below are for.
send_canonical('seed-1', { type => 'item.upsert', item => {
    id => 'item-h', name => 'Hostile', variants => [ { sku => 'SKU-H' } ] } });
ok($p->wait_for(sub { $p->redis('GET', 'cat:item:item-h') }), 'seed item projected');

# --- bug 1: long delivery ids are told apart exactly ------------------------

# Three ids of 657 bytes sharing their first 650: earlier versions cut the
# key at 600 bytes, applied one and counted two as duplicates.
my $prefix = 'w' x 650;
send_canonical("$prefix-$_", { type => 'stock.adjust', store_id => 'store-h',
                               sku => 'SKU-H', delta => 1, reason => 'receipt' })
    for qw(aaaaaa bbbbbb cccccc);
ok($p->wait_for(sub { my $s = stock('store-h', 'SKU-H'); $s && $s->{on_hand} == 3 }),
   'three 657-byte ids with a common prefix: all three applied')
    or diag(explain(stock('store-h', 'SKU-H')));

# An id of 5,000 bytes (above the 1,024 that used to fall back to the
# Kafka position), sent twice: applied once.
my $huge = 'h' x 5000;
send_canonical($huge, { type => 'stock.adjust', store_id => 'store-h',
                        sku => 'SKU-H', delta => 10, reason => 'receipt' }) for 1 .. 2;
send_canonical('after-huge', { type => 'stock.adjust', store_id => 'store-h',
                               sku => 'SKU-H', delta => 100, reason => 'receipt' });
ok($p->wait_for(sub { my $s = stock('store-h', 'SKU-H'); $s && $s->{on_hand} >= 113 }),
   'messages after the long ids applied');
is(stock('store-h', 'SKU-H')->{on_hand}, 113, 'a 5,000-byte id sent twice: applied once');
is($p->sql("SELECT count(*) FROM inbound_processed WHERE dedup_key"
           . " ~ '^canonical\\|sha256:[0-9a-f]{64}\$'"), 4,
   'long ids are keyed by the SHA-256 of the whole id');
is($p->sql("SELECT count(*) FROM inbound_processed WHERE dedup_key = 'canonical|seed-1'"), 1,
   'short ids keep their readable key, as before');

# A key stored by an earlier version stays a duplicate after the upgrade.
$p->sql("INSERT INTO inbound_processed (dedup_key, topic, partition, \"offset\", commands)"
        . " VALUES ('canonical|before-upgrade', 'commerce.inbound', 0, -1, 1)");
send_canonical('before-upgrade', { type => 'stock.adjust', store_id => 'store-h',
                                   sku => 'SKU-H', delta => 1000, reason => 'receipt' });
send_canonical('after-upgrade', { type => 'stock.adjust', store_id => 'store-h',
                                  sku => 'SKU-H', delta => 1, reason => 'receipt' });
ok($p->wait_for(sub { stock('store-h', 'SKU-H')->{on_hand} >= 114 }), 'next message applied');
is(stock('store-h', 'SKU-H')->{on_hand}, 114,
   'a delivery deduplicated before the upgrade is still a duplicate');

# --- bug 3: a dead letter too large for Kafka does not stop the outbox ------

# The body fits the producer's message.max.bytes (1,000,000, headers
# included) with the inbound headers; with the dead letter's headers it
# does not. Earlier versions republished it forever and published nothing
# after it.
{
    # kcat's own input buffer is message.max.bytes + 1: more room for it
    open my $fh, '|-', 'kcat', '-P', '-b', $p->brokers, '-t', 'commerce.inbound',
        '-k', 'm-1', '-H', 'source=canonical', '-H', 'delivery_id=big-1',
        '-X', 'message.max.bytes=2000000' or die "kcat: $!";
    print $fh 'x' x 999_850;
    close $fh or die "kcat failed: $?";
}
send_canonical('after-big', { type => 'stock.adjust', store_id => 'store-h',
                              sku => 'SKU-H', delta => 1, reason => 'receipt' });
ok($p->wait_for(sub { stock('store-h', 'SKU-H')->{on_hand} == 115 }),
   'the message after the big one applied');
ok($p->wait_for(\&outbox_empty, 'outbox drained', 90),
   'the outbox drains past the dead letter Kafka refuses');
is($p->sql("SELECT reason || ':' || octet_length(body) FROM dead_letters"
           . " WHERE delivery_id = 'big-1'"), 'invalid_json:999850',
   'the dead letter keeps the whole body in PostgreSQL');
my ($big) = grep { /delivery_id=big-1/ } consume('commerce.dlq', '%h|%S\\n');
like($big // '', qr/reduced=too_large/, 'on commerce.dlq reduced, flagged too_large');
like($big // '', qr/dlq_id=\d+/, 'with its dead_letters id');
like($big // '', qr/\|(?:0|-1)$/, 'and no value');
my @after = grep { /"delivery_id":"after-big"/ } consume('commerce.events', '%s\\n');
is(scalar @after, 1, 'the event after it is on commerce.events');
like($p->log_text('projector1'), qr/"level":"error".*refused by Kafka for good/,
     'an error line says so');
like(metrics(), qr/^projector_outbox_refused_total\{reason="too_large"\} 1$/m,
     'projector_outbox_refused_total{reason="too_large"}');
like(metrics(), qr/^projector_dlq_total\{reason="invalid_json"\} 1$/m,
     'projector_dlq_total{reason="invalid_json"}');

# An event too large for Kafka (an item whose attributes fill the inbound
# message) is published reduced too; the event store has it whole.
{
    my $body = encode_json({ type => 'item.upsert', item => {
        id => 'item-big', name => 'Big', attributes => { blob => 'y' x 999_000 },
        variants => [ { sku => 'SKU-BIG' } ] } });
    open my $fh, '|-', 'kcat', '-P', '-b', $p->brokers, '-t', 'commerce.inbound',
        '-k', 'm-1', '-H', 'source=canonical', '-H', 'delivery_id=big-item',
        '-X', 'message.max.bytes=2000000' or die "kcat: $!";
    print $fh $body;
    close $fh or die "kcat failed: $?";
}
send_canonical('after-big-item', { type => 'stock.set', store_id => 'store-h',
                                   sku => 'SKU-BIG', on_hand => 5 });
ok($p->wait_for(sub { my $s = stock('store-h', 'SKU-BIG'); $s && $s->{on_hand} == 5 }),
   'the item with a large event and the stock after it applied');
ok($p->wait_for(\&outbox_empty, 'outbox drained', 90),
   'the outbox drains past the event Kafka refuses');
my ($bigev) = grep { /event_type=catalog\.item\.updated/ && /reduced=too_large/ }
              consume('commerce.events', '%h|%S\\n');
like($bigev // '', qr/event_id=[0-9a-f-]{36}.*\|(?:0|-1)$/,
     'on commerce.events reduced: its event_id, no value');
is($p->sql("SELECT octet_length(data->'attributes'->>'blob') FROM event_store"
           . " WHERE aggregate_id = 'item-big'"), 999_000, 'the event store has it whole');
ok($p->wait_for(sub { grep { /"delivery_id":"after-big-item"/ }
                      consume('commerce.events', '%s\\n') }),
   'the events after it are published');
like(metrics(), qr/^projector_outbox_refused_total\{reason="too_large"\} 2$/m,
     'counted');

# --- bug 4: unknown skus are parked until their item comes ------------------

send_canonical('early-stock', { type => 'stock.set', store_id => 'store-h',
                                sku => 'SKU-LATE', on_hand => 7 });
send_canonical('early-price', { type => 'price.set', sku => 'SKU-LATE',
                                price => { amount => '12.50', currency => 'EUR' } });
ok($p->wait_for(sub { $p->sql("SELECT count(*) FROM dead_letters WHERE reason = 'unknown_sku'"
                              . " AND waiting_for = 'SKU-LATE'") == 2 }),
   'stock and price of an unknown sku: dead-lettered as unknown_sku, waiting');
ok(!defined stock('store-h', 'SKU-LATE'), 'and not served');
is($p->sql("SELECT count(*) FROM stock_levels WHERE sku = 'SKU-LATE'")
   + $p->sql("SELECT count(*) FROM price_book WHERE sku = 'SKU-LATE'"), 0,
   'nor stored');

send_canonical('late-item', { type => 'item.upsert', item => {
    id => 'item-late', name => 'Late', variants => [ { sku => 'SKU-LATE' } ] } });
ok($p->wait_for(sub { my $s = stock('store-h', 'SKU-LATE'); $s && $s->{on_hand} == 7
                      && $s->{price} && $s->{price}{amount} eq '12.50' }),
   'the item came: the parked stock and price are applied');
is($p->sql("SELECT count(*) FROM dead_letters WHERE waiting_for = 'SKU-LATE'"
           . " AND replayed_at IS NOT NULL AND replay_count = 1"), 2,
   'and marked replayed');

# The same batch: stock first, then its item (one kcat run, one key).
$p->produce_many({ source => 'canonical' },
    "m-1\t" . encode_json({ type => 'stock.set', store_id => 'store-h',
                            sku => 'SKU-SAME', on_hand => 4 }),
    "m-1\t" . encode_json({ type => 'item.upsert', item => {
        id => 'item-same', name => 'Same', variants => [ { sku => 'SKU-SAME' } ] } }));
ok($p->wait_for(sub { my $s = stock('store-h', 'SKU-SAME'); $s && $s->{on_hand} == 4 }),
   'stock before its item in one batch: applied once the item is there');

# An item and its stock in one message, in that order: applied at once.
send_canonical('together', { commands => [
    { type => 'item.upsert', item => { id => 'item-tog', name => 'Together',
                                       variants => [ { sku => 'SKU-TOG' } ] } },
    { type => 'stock.set', store_id => 'store-h', sku => 'SKU-TOG', on_hand => 2 } ] });
ok($p->wait_for(sub { my $s = stock('store-h', 'SKU-TOG'); $s && $s->{on_hand} == 2 }),
   'an item and its stock in one message');
is($p->sql("SELECT count(*) FROM dead_letters WHERE waiting_for = 'SKU-TOG'"), 0,
   'not parked');

# --- bug 4: values PostgreSQL would refuse are refused first, in our words ---

my @bad = (
    [ 'bad-cur', { type => 'price.set', sku => 'SKU-H',
                   price => { amount => '1.00', currency => 'ZZZ' } }, 'invalid_currency' ],
    [ 'bad-jpy', { type => 'price.set', sku => 'SKU-H',
                   price => { amount => '1.50', currency => 'JPY' } }, 'invalid_amount' ],
    [ 'bad-date', { type => 'stock.set', store_id => 'store-h', sku => 'SKU-H',
                    on_hand => 1, as_of => '2026-02-30T00:00:00Z' }, 'invalid_timestamp' ],
    [ 'bad-hour', { type => 'price.set', sku => 'SKU-H', as_of => '2026-01-01T24:00:00Z',
                    price => { amount => '1.00', currency => 'EUR' } }, 'invalid_timestamp' ],
    [ 'bad-int', '{"type":"stock.set","store_id":"store-h","sku":"SKU-H",'
                 . '"on_hand":9223372036854775807}', 'out_of_range' ],
    [ 'bad-delta', { type => 'stock.adjust', store_id => 'store-h', sku => 'SKU-H',
                     delta => -4_000_000_000_000, reason => 'sale' }, 'out_of_range' ],
);
send_canonical($_->[0], $_->[1]) for @bad;
send_canonical('after-bad', { type => 'stock.adjust', store_id => 'store-h',
                              sku => 'SKU-H', delta => 1, reason => 'receipt' });
ok($p->wait_for(sub { stock('store-h', 'SKU-H')->{on_hand} == 116 }),
   'the valid message after the invalid ones applied');
for my $b (@bad) {
    is($p->sql("SELECT reason FROM dead_letters WHERE delivery_id = '$b->[0]'"),
       $b->[2], "$b->[0]: $b->[2]");
}
is($p->sql("SELECT count(*) FROM dead_letters WHERE reason !~ '^[a-z][a-z_]*\$'"
           . " OR detail ~* '(ERROR|SQLSTATE|postgres|invalid input syntax)'"), 0,
   'every reason a code of ours, no database text in the details');
is($p->sql("SELECT count(*) FROM dead_letters WHERE reason = 'rejected_by_store'"), 0,
   'nothing reached PostgreSQL to be refused there');
ok($p->wait_for(\&outbox_empty), 'outbox drained');

# --- issue 12 item 7: the edge's JSON rule, every source ------------------

# What the module refuses with 400 (commerce_inbound_parse_json) the
# projector dead-letters with the same reason, for every adapter: a message
# can reach commerce.inbound without the module (kcat, a replay, a location
# without commerce_webhook_json). Earlier versions applied a Shopify body
# with a key twice (the last one won) and called a top-level string
# invalid_command.
my @body = (
    [ 'dup-shopify', 'shopify', 'products/update',
      '{"id":901,"title":"First","title":"Second","variants":[]}', 'duplicate_key' ],
    [ 'dup-shopify-deep', 'shopify', 'inventory_levels/update',
      '{"inventory_item_id":77,"location_id":5,"available":3,'
      . '"x":{"k":1,"k":2}}', 'duplicate_key' ],
    [ 'dup-canonical', 'canonical', undef,
      '{"type":"stock.adjust","store_id":"store-h","sku":"SKU-H",'
      . '"delta":1000,"delta":1,"reason":"receipt"}', 'duplicate_key' ],
    [ 'str-canonical', 'canonical', undef, '"stock.adjust"', 'not_an_object' ],
    [ 'str-shopify', 'shopify', 'products/update', '"product"', 'not_an_object' ],
    [ 'arr-canonical', 'canonical', undef,
      '[{"type":"stock.adjust","store_id":"store-h","sku":"SKU-H","delta":1,'
      . '"reason":"receipt"}]', 'not_an_object' ],
);
for my $b (@body) {
    $p->produce(key => 'm-1', body => $b->[3],
                headers => [source => $b->[1], delivery_id => $b->[0],
                            defined $b->[2] ? (topic => $b->[2]) : ()]);
}
send_canonical('after-json', { type => 'stock.adjust', store_id => 'store-h',
                               sku => 'SKU-H', delta => 1, reason => 'receipt' });
ok($p->wait_for(sub { stock('store-h', 'SKU-H')->{on_hand} >= 117 }),
   'the valid message after the refused bodies applied');
is(stock('store-h', 'SKU-H')->{on_hand}, 117, 'no refused body was applied');
for my $b (@body) {
    is($p->sql("SELECT reason FROM dead_letters WHERE delivery_id = '$b->[0]'"),
       $b->[4], "$b->[0]: dead-lettered $b->[4], as the edge answers");
}
like($p->sql("SELECT detail FROM dead_letters WHERE delivery_id = 'str-canonical'"),
     qr/^line 1 column 1: the top level is a string, not an object$/,
     'the detail says what the top level is');
ok(!defined $p->redis('GET', 'cat:item:shopify-901'),
   'the Shopify product with a key twice is not served');
ok($p->wait_for(sub { metrics() =~ /^projector_dlq_total\{reason="not_an_object"\} 3$/m }),
   'projector_dlq_total{reason="not_an_object"}');
like(metrics(), qr/^projector_dlq_total\{reason="duplicate_key"\} 3$/m,
     'projector_dlq_total{reason="duplicate_key"}');
ok($p->wait_for(\&outbox_empty), 'outbox drained');

# --- clean shutdown ------------------------------------------------------------

is($p->stop_proc($proj, 'TERM'), 0, 'SIGTERM: exit status 0');

$p->stop;
done_testing();
