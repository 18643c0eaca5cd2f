#!/usr/bin/perl

# Two projectors, one partition each: a stock value shows its level and
# its price, and the writers of the two work on different projectors.
# PostgreSQL locks held by the test stop a batch at a chosen point, so
# that the other projector's batch commits in between, as it could
# whenever the two are busy at once:
#
#   1. a stock batch has read the price and is stopped before it writes;
#      a price change commits and its values are rendered (with the old
#      level); then the stock batch commits what it rendered (with the old
#      price);
#   2. a price batch has written and is stopped before its commit; a stock
#      batch creates a level of the sku in another store and commits (with
#      the old price); then the price batch commits.
#
# Whatever the design (the writers waiting for each other, or values
# rendered again after the commit), Redis must end with the value of the
# latest level and price, as PostgreSQL renders it: a lost price or stock
# update shows as a difference. Each step waits for a state (a lock
# waited for, a value in Redis), never for a time.

use strict;
use warnings;

use JSON::PP;
use Test::More;

use lib 't/lib';
use CommerceProj;

my $p = CommerceProj->new(partitions => 2);
my $json = JSON::PP->new->canonical;
my $sku = 'SKU-R-A';

sub send_on {
    my ($partition, $cmd) = @_;
    $p->produce(partition => $partition, headers => { source => 'canonical' },
                body => encode_json($cmd));
}

sub stock_set {
    my ($partition, $store, $on_hand) = @_;
    send_on($partition, { type => 'stock.set', store_id => $store, sku => $sku,
                          on_hand => $on_hand, unit => 'each' });
}

sub base_price {
    my ($partition, $amount) = @_;
    send_on($partition, { type => 'price.set', sku => $sku,
                          price => { amount => $amount, currency => 'EUR' } });
}

sub value {
    my ($store) = @_;
    my $v = $p->redis('HGET', "inv:$store", $sku);
    return defined $v ? decode_json($v) : {};
}

sub shows {
    my ($store, $on_hand, $amount) = @_;
    my $v = value($store);
    return ($v->{on_hand} // -1) == $on_hand
        && ($v->{price}{amount} // '') eq $amount;
}

sub drained { $p->sql('SELECT count(*) FROM outbox') == 0 }

# Sessions of the projectors' batches waiting for a lock.
sub batches_waiting {
    return $p->sql("SELECT count(*) FROM pg_stat_activity WHERE"
                   . " application_name = 'commerce-projector'"
                   . " AND wait_event_type = 'Lock'");
}

# The stock value in Redis is the one PostgreSQL renders now.
sub as_rendered {
    my ($store) = @_;
    my $want = $p->sql("SELECT value FROM rm_stock_values WHERE store_id ="
                       . " '$store' AND sku = '$sku'");
    my $got = $p->redis('HGET', "inv:$store", $sku) // '';
    return is($got ne '' ? $json->encode(decode_json($got)) : '',
              $json->encode(decode_json($want)),
              "inv:$store $sku is the latest level and price");
}

# A session of the test that holds what it took until released.
sub hold {
    my ($name, @sql) = @_;
    my $info = $p->conninfo . " application_name=$name";
    open my $h, '|-', 'psql', '-Atq', '-o', '/dev/null', '-v',
        'ON_ERROR_STOP=1', $info or die "psql: $!";
    $h->autoflush(1);
    print $h "BEGIN;\n", map { "$_;\n" } @sql;
    ok($p->wait_for(sub { $p->sql("SELECT count(*) FROM pg_stat_activity"
                                  . " WHERE application_name = '$name'"
                                  . " AND state = 'idle in transaction'") == 1 }),
       "$name holds its lock");
    return $h;
}

sub release {
    my ($h) = @_;
    print $h "ROLLBACK;\n";
    close $h;
}

# --- two projectors, a partition each ----------------------------------------

# Which partitions a projector has now, by the assignments and
# revocations in its log.
sub owned {
    my ($n) = @_;
    my %own;
    for (split /\n/, $p->log_text("projector$n")) {
        next unless /"partition (assigned|revoked)".*"partition":(\d+)/;
        if ($1 eq 'assigned') { $own{$2} = 1 } else { delete $own{$2} }
    }
    return sort keys %own;
}

my @pids = map { $p->start_projector('--kafka.batch_max', 50) } 1, 2;
my ($stock_part, $price_part);
ok($p->wait_for(sub {
    my @a = owned(1);
    my @b = owned(2);
    return 0 unless @a == 1 && @b == 1 && $a[0] != $b[0];
    ($stock_part, $price_part) = ($a[0], $b[0]);
    return 1 }), 'each projector has one partition');

send_on($price_part, { type => 'item.upsert', item => { id => 'item-r',
        sku => 'SKU-R', name => 'Race', variants => [ { sku => $sku,
        name => 'A' } ] } });
ok($p->wait_for(sub { $p->sql('SELECT count(*) FROM variants') == 1 }),
   'the item is in');
base_price($price_part, '1.00');
stock_set($stock_part, 'store-1', 5);
ok($p->wait_for(sub { shows('store-1', 5, '1.00') && drained() }),
   'store-1 shows 5 at 1.00');

# --- 1. a price committed after a stock batch read the old one -------------

# The level's row, locked: the stock batch reads the level and the price,
# then waits to write.
my $h = hold('t86-level', "SELECT 1 FROM stock_levels WHERE store_id ="
             . " 'store-1' AND sku = '$sku' FOR UPDATE");
stock_set($stock_part, 'store-1', 7);
ok($p->wait_for(sub { batches_waiting() == 1 }),
   'the stock batch read the price and waits to write');

base_price($price_part, '2.00');
ok($p->wait_for(sub { shows('store-1', 5, '2.00') || batches_waiting() == 2 }),
   'the price is rendered with the old level (or waits for the stock batch)');
my $rendered = shows('store-1', 5, '2.00');
release($h);

ok($p->wait_for(sub { (value('store-1')->{on_hand} // -1) == 7 && drained() }),
   'the stock batch committed, its values written');
ok(shows('store-1', 7, '2.00'), 'store-1 shows the new level at the new price')
    or diag(explain(value('store-1')));
as_rendered('store-1');
note('the price was rendered before the stock batch committed') if $rendered;

# --- 2. a level created while a price batch had not committed ---------------

# The archive's row of the price message, taken first: its batch waits
# for the archive, written and not committed yet.
my $cluster = $p->sql("SELECT DISTINCT cluster_id FROM consumer_offsets");
my $next = $p->sql("SELECT next_offset FROM consumer_offsets WHERE"
                   . " partition = $price_part");
$h = hold('t86-archive', "INSERT INTO inbound_archive (cluster_id, topic,"
          . " partition, \"offset\", body) VALUES ('$cluster',"
          . " 'commerce.inbound', $price_part, $next, '\\x00')");
base_price($price_part, '3.00');
ok($p->wait_for(sub { $p->sql("SELECT count(*) FROM pg_stat_activity WHERE"
                              . " application_name = 'commerce-projector-archive'"
                              . " AND wait_event_type = 'Lock'") == 1 }),
   'the price batch waits for its archive');

stock_set($stock_part, 'store-2', 4);
ok($p->wait_for(sub { (value('store-2')->{on_hand} // -1) == 4 && drained()
                      || batches_waiting() == 1 }),
   'a level in store-2 committed and rendered (or waits for the price batch)');
release($h);

ok($p->wait_for(sub { shows('store-1', 7, '3.00') && drained() }),
   'the price batch committed, its values written');
ok(shows('store-2', 4, '3.00'), 'the new level shows the new price')
    or diag(explain(value('store-2')));
as_rendered($_) for qw(store-1 store-2);

my $deadlocks = () = join('', map { $p->log_text("projector$_") } 1, 2)
                     =~ /40P01|deadlock/g;
is($deadlocks, 0, 'no deadlock');
is($p->stop_proc($_, 'TERM'), 0, 'SIGTERM exit 0') for @pids;

$p->stop;
done_testing();
