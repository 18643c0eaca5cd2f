#!/usr/bin/perl

# commerce-projector scaled out: two projectors share the partitions while
# base prices (one merchant's partition), store overrides and stock
# movements (the stores' partitions) hit the same skus. A stock value is
# versioned by its level's and its prices' versions, so a price change
# writes no stock row, and the writers do not wait for each other (the
# values are rendered again after the commits: t/86 forces the orders).
# Nothing may deadlock (no 40P01, in the projectors' logs or the
# server's), every message is applied once, and the read model is what
# PostgreSQL renders, byte for byte.

use strict;
use warnings;

use JSON::PP;
use Test::More;
use IO::Socket::INET;

use lib 't/lib';
use CommerceProj;

my $p = CommerceProj->new(partitions => 4);
my $json = JSON::PP->new->canonical;
my @stores = map { "store-$_" } 1 .. 4;
my @skus = map { sprintf 'SKU-%02d-%s', int($_ / 2), $_ % 2 ? 'B' : 'A' } 0 .. 19;

sub upsert {
    my ($n) = @_;
    return "m-1\t" . encode_json({ type => 'item.upsert', item => {
        id => sprintf('item-%02d', $n), sku => sprintf('SKU-%02d', $n),
        name => "Item $n", variants => [
            map { { sku => sprintf('SKU-%02d-%s', $n, $_), name => $_ } } qw(A B) ] } });
}

sub price {
    my ($sku, $amount, $store) = @_;
    return ($store // 'm-1') . "\t" . encode_json({ type => 'price.set', sku => $sku,
        price => { amount => $amount, currency => 'EUR' },
        defined $store ? (store_id => $store) : () });
}

sub move {
    my ($store, $sku) = @_;
    return "$store\t" . encode_json({ type => 'stock.adjust', store_id => $store,
        sku => $sku, delta => 1, reason => 'receipt' });
}

sub metric {
    my ($port, $re) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or return 0;
    print $s "GET /metrics HTTP/1.0\r\n\r\n";
    local $/;
    my $body = <$s> // '';
    return $body =~ $re ? $1 : 0;
}

sub drained { $p->sql('SELECT count(*) FROM outbox') == 0 }

# Every stock value and item document in Redis is the one PostgreSQL
# renders now (compacted: t/80 checks the bytes); returns the number that
# differ.
sub same {
    my ($got, $want) = @_;
    return $got ne ''
        && $json->encode(decode_json($got)) eq $json->encode(decode_json($want));
}

sub read_model_diff {
    my $diff = 0;
    for my $row (split /\n/, $p->sql("SELECT store_id || E'\\t' || sku"
                                     . " || E'\\t' || value FROM rm_stock_values")) {
        my ($store, $sku, $value) = split /\t/, $row, 3;
        my $got = $p->redis('HGET', "inv:$store", $sku) // '';
        $diff++, diag("inv:$store $sku: $got, not $value") unless same($got, $value);
    }
    for my $row (split /\n/, $p->sql("SELECT id || E'\\t' || doc FROM rm_item_docs")) {
        my ($id, $doc) = split /\t/, $row, 2;
        my $got = $p->redis('GET', "cat:item:$id") // '';
        $diff++, diag("cat:item:$id: $got, not $doc") unless same($got, $doc);
    }
    return $diff;
}

# --- the catalog, then two projectors --------------------------------------

$p->produce_many({ source => 'canonical' }, map { upsert($_) } 0 .. 9);
my ($m1, $m2) = ($p->t->port('M1'), $p->t->port('M2'));
my @pids = ($p->start_projector('--metrics.port', $m1, '--kafka.batch_max', 100),
            $p->start_projector('--metrics.port', $m2, '--kafka.batch_max', 100));
ok($p->wait_for(sub { $p->sql('SELECT count(*) FROM variants') == 20 }),
   'the catalog is in');
ok($p->wait_for(sub {
    my $a = () = $p->log_text('projector1') =~ /partition assigned/g;
    my $b = () = $p->log_text('projector2') =~ /partition assigned/g;
    $a > 0 && $b > 0 }), 'both projectors got partitions');

# --- prices and stock of the same skus, concurrently -------------------------

# Rounds of: a base price of every sku (the merchant's partition), an
# override and a movement in every store (the stores' partitions).
my (@lines, $moves, $prices);
for my $round (1 .. 25) {
    for my $sku (@skus) {
        push @lines, price($sku, "$round.00");
        $prices++;
        for my $store (@stores) {
            push @lines, move($store, $sku);
            $moves++;
            if (($round + length $sku) % 5 == 0) {
                push @lines, price($sku, "$round.50", $store);
                $prices++;
            }
        }
    }
}
$p->produce_many({ source => 'canonical' }, @lines);

ok($p->wait_for(sub { $p->sql('SELECT count(*) FROM stock_ledger') == $moves },
                "$moves movements", 300), "all $moves movements applied");
ok($p->wait_for(sub { $p->sql("SELECT count(*) FROM event_store"
                              . " WHERE event_type = 'pricing.price.updated'")
                      == $prices }, "$prices prices", 120),
   "all $prices prices applied");
ok($p->wait_for(\&drained, 'outbox drained', 120), 'outbox drained');
is($p->sql('SELECT sum(on_hand) FROM stock_levels'), $moves,
   'on_hand sums to the movements');
is($p->sql("SELECT count(*) FROM inbound_processed"), 10 + scalar @lines,
   'each message processed once');

my $deadlocks = () = join('', map { $p->log_text("projector$_") } 1, 2)
                     =~ /40P01|deadlock/g;
is($deadlocks, 0, 'no deadlock in the projectors\' logs');
my $server = CommerceTest->slurp($p->dir . '/pg/server.log');
my $server_deadlocks = () = $server =~ /deadlock detected/g;
is($server_deadlocks, 0, 'no deadlock in the server\'s log');
ok(metric($m1, qr/projector_messages_total\{result="applied"\} (\d+)/) > 0
   && metric($m2, qr/projector_messages_total\{result="applied"\} (\d+)/) > 0,
   'both projectors applied messages');

is(read_model_diff(), 0, 'Redis holds what PostgreSQL renders');

# --- a value's version: its level's and its prices' --------------------------

my $sku = $skus[3];
my $v = decode_json($p->redis('HGET', 'inv:store-2', $sku));
is($v->{version}, $p->sql("SELECT s.version + COALESCE(sum(b.version), 0)"
                          . " FROM stock_levels s LEFT JOIN price_book b"
                          . " ON b.sku = s.sku AND b.store_id IN ('', s.store_id)"
                          . " WHERE s.store_id = 'store-2' AND s.sku = '$sku'"
                          . " GROUP BY s.version"),
   'a stock value\'s version adds its level\'s and its prices\'');
is($p->sql("SELECT version FROM stock_levels WHERE store_id = 'store-2'"
           . " AND sku = '$sku'"), 25, 'the level\'s own version counts its movements');

# A base price alone: every store's value shows it, with a higher version,
# where the store has no override.
my $no_override = $p->sql("SELECT string_agg(store_id, ',' ORDER BY store_id)"
                          . " FROM stock_levels s WHERE sku = '$sku' AND NOT EXISTS"
                          . " (SELECT 1 FROM price_book o WHERE o.sku = s.sku"
                          . " AND o.store_id = s.store_id)");
my %before = map { $_ => decode_json($p->redis('HGET', "inv:$_", $sku))->{version} } @stores;
$p->produce_many({ source => 'canonical' }, price($sku, '99.99'));
ok($p->wait_for(sub {
    !grep { decode_json($p->redis('HGET', "inv:$_", $sku))->{version} <= $before{$_} }
    @stores }), 'a base price raises every store\'s value');
ok($p->wait_for(\&drained), 'outbox drained');
is(join(',', grep { (decode_json($p->redis('HGET', "inv:$_", $sku))->{price}{amount} // '')
                    eq '99.99' } @stores), $no_override,
   'the stores without an override show the new base price');
is(read_model_diff(), 0, 'Redis holds what PostgreSQL renders');

is($p->stop_proc($_, 'TERM'), 0, 'SIGTERM exit 0') for @pids;

# --- --rebuild removes what PostgreSQL no longer has ---------------------------

# Values of rows that are not in PostgreSQL (as when the database was
# recreated beside a Redis that kept its data): a document and its index
# entry, an index entry alone, a stock value in a known store and a store
# of its own. Keys that are not the read model's stay.
my $ghost_doc = '{"id":"item-ghost","version":1}';
$p->redis('SET', 'cat:item:item-ghost', $ghost_doc);
$p->redis('ZADD', 'cat:index', 0, 'item-ghost');
$p->redis('ZADD', 'cat:index', 0, 'item-no-doc');
$p->redis('HSET', 'inv:store-1', 'SKU-GHOST', '{"sku":"SKU-GHOST","version":1}');
$p->redis('HSET', 'inv:store-ghost', 'SKU-00-A', '{"sku":"SKU-00-A","version":1}');
$p->redis('SET', 'wh:dedup:other', 'kept');
$p->redis('SET', 'inv:not-a-hash', 'kept');
my $live = $p->redis('HLEN', 'inv:store-1');
my ($rc, $out) = $p->run($p->projector_args('--rebuild'));
is($rc, 0, '--rebuild exits 0');
like($out, qr/"items":1,"index_members":1,"stock_values":2/,
     "it reports what it removed (the ghost's index entry went with it)");
ok(!$p->redis('EXISTS', 'cat:item:item-ghost'), 'a document without its item is gone');
ok(!defined $p->redis('ZSCORE', 'cat:index', 'item-ghost')
   && !defined $p->redis('ZSCORE', 'cat:index', 'item-no-doc'),
   'and the index entries without a document');
ok(!defined $p->redis('HGET', 'inv:store-1', 'SKU-GHOST'),
   'a stock value without its level is gone');
is($p->redis('HLEN', 'inv:store-1'), $live - 1, 'the store\'s other values stay');
ok(!$p->redis('EXISTS', 'inv:store-ghost'), 'a store without levels is gone');
is($p->redis('GET', 'wh:dedup:other') . $p->redis('GET', 'inv:not-a-hash'),
   'keptkept', 'keys that are not read-model values stay');
is($p->redis('ZCARD', 'cat:index'), 10, 'the index has the items');
is(read_model_diff(), 0, 'Redis holds what PostgreSQL renders');

# --- a new Kafka cluster is not the old one ----------------------------------

# Offsets, archive rows, dead letters and position dedup keys are those of
# one cluster's log. A devbroker restarted is a new cluster whose offsets
# start at 0 again: its messages are applied and archived, not taken for
# the old cluster's (consumed already, or skipped as past the log's end).
sub ledger { $p->sql('SELECT count(*) FROM stock_ledger') }
sub archived { $p->sql('SELECT count(*) FROM inbound_archive') }

sub traffic {          # n position-keyed movements and one delivery id
    my ($n, $id) = @_;
    $p->produce_many({ source => 'canonical' },
                     map { move($stores[$_ % 4], $skus[$_ % 20]) } 1 .. $n);
    $p->produce(key => 'store-1', headers => { source => 'canonical', delivery_id => $id },
                body => encode_json({ type => 'stock.adjust', store_id => 'store-1',
                                      sku => $skus[0], delta => 1,
                                      reason => 'receipt' }));
}

my $pid = $p->start_projector;
my ($l0, $a0) = (ledger(), archived());
traffic(40, 'cluster-a-1');
ok($p->wait_for(sub { ledger() == $l0 + 41 }), 'the first cluster\'s messages applied');
$p->stop_proc($pid, 'TERM');
my $first = $p->sql('SELECT DISTINCT cluster_id FROM consumer_offsets');
like($first, qr/^[\w-]+$/, "offsets name the cluster ($first)");
like($p->log_text('projector' . $p->{nproj}), qr/"kafka cluster \Q$first\E"/,
     'the cluster is logged');

# Offsets stored before the cluster was kept (migration 011 gives them
# ''): the first cluster a projector sees takes them, and nothing is read
# again.
$p->sql("UPDATE consumer_offsets SET cluster_id = '' WHERE cluster_id = '$first'");
my ($l1, $a1) = (ledger(), archived());
$pid = $p->start_projector;
traffic(8, 'cluster-a-2');
ok($p->wait_for(sub { ledger() == $l1 + 9 }), 'applied after the old offsets were taken');
ok($p->wait_for(sub { archived() == $a1 + 9 }), 'only the new messages archived');
is(ledger(), $l1 + 9, 'nothing applied twice');
like($p->log_text('projector' . $p->{nproj}), qr/taken as this cluster's/,
     'the adoption is logged');
is($p->sql("SELECT count(*) FROM consumer_offsets WHERE cluster_id = ''"), 0,
   'no offsets without a cluster left');
$p->stop_proc($pid, 'TERM');

# The devbroker restarted: a new cluster, its log empty. (librdkafka's
# mock cluster makes its id of two heap addresses: under AddressSanitizer,
# whose allocator puts them at the same place at every start, a restarted
# devbroker has the old id, and is not a new cluster to anyone.)
($l1, $a1) = (ledger(), archived());
$p->stop_proc($p->{broker}, 'TERM');
$p->start_broker(partitions => 4);
$pid = $p->start_projector;
ok($p->wait_for(sub { $p->log_text('projector' . $p->{nproj}) =~ /"kafka cluster (\S+)"/ }),
   'the projector knows the cluster');
my ($second) = $p->log_text('projector' . $p->{nproj}) =~ /"kafka cluster (\S+)"/;
SKIP: {
    skip "the restarted devbroker has the old cluster id ($second)", 6
        if $second eq $first;

    traffic(40, 'cluster-b-1');
    ok($p->wait_for(sub { ledger() == $l1 + 41 }, 'second cluster', 90),
       'the new cluster\'s messages applied, at offsets the old one had too');
    ok($p->wait_for(sub { archived() == $a1 + 41 }), 'and archived beside the old ones');
    is($p->sql('SELECT count(DISTINCT cluster_id) FROM consumer_offsets'), 2,
       'each cluster has its offsets');
    ok($p->sql("SELECT count(*) FROM inbound_archive a WHERE cluster_id = '$second'"
               . " AND EXISTS (SELECT 1 FROM inbound_archive o WHERE o.cluster_id"
               . " IN ('$first', '') AND (o.topic, o.partition, o.\"offset\")"
               . ' = (a.topic, a.partition, a."offset"))') > 0,
       'the same positions archived for both clusters');
    is($p->sql('SELECT sum(on_hand) FROM stock_levels'), $moves + 91,
       'on_hand sums to the movements');
    is($p->stop_proc($pid, 'TERM'), 0, 'SIGTERM exit 0');
}

$p->stop;
done_testing();
