#!/usr/bin/perl

# Stock reservations (sql/012_sagas.sql): stock_reserve, stock_release,
# stock_sell and stock_release_expired, their ledger rows, versions and
# answers, all or nothing, idempotency; no oversell under 200 concurrent
# reservations; no deadlock between reservations in opposite line orders
# and the projector's batches; a count below what is reserved applied by
# the projector, the shortfall on the newest reservations; the read model
# following through the projector's read-model writer.

use strict;
use warnings;

use JSON::PP;
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);

use lib 't/lib';
use CommerceProj;

my $p = CommerceProj->new;
my $json = JSON::PP->new->canonical;
my $proj = $p->start_projector;
my $n = 0;

sub canonical {
    my (@commands) = @_;
    $n++;
    $p->produce(key => 'store-1', body => encode_json({ commands => \@commands }),
                headers => [source => 'canonical', delivery_id => "d-$n",
                            received_at => int(time * 1000)]);
}
sub uuid { sprintf '00000000-0000-4000-8000-%012d', $_[0] }
sub lines { encode_json([ map { { sku => $_->[0], quantity => $_->[1] } } @_ ]) }
sub reserve {
    my ($order, $lines, $expires) = @_;
    $expires //= "now() + interval '1 hour'";
    return $p->sql("SELECT left(ok::text, 1) || '|' || COALESCE(reason, '') || '|'"
                   . " || COALESCE(sku, '') || '|' || left((outbox_id IS NOT NULL)::text, 1)"
                   . " FROM stock_reserve('" . uuid($order) . "', 'store-1',"
                   . " '$lines', $expires)");
}
sub release {
    my ($order) = @_;
    return $p->sql("SELECT left(ok::text, 1) || '|' || COALESCE(reason, '') || '|'"
                   . " || left((outbox_id IS NOT NULL)::text, 1) FROM stock_release('"
                   . uuid($order) . "', 'cancelled')");
}
sub sell {
    my ($order) = @_;
    return $p->sql("SELECT left(ok::text, 1) || '|' || COALESCE(reason, '') || '|'"
                   . " || COALESCE(sku, '') || '|' || left((outbox_id IS NOT NULL)::text, 1)"
                   . " FROM stock_sell('" . uuid($order) . "')");
}
sub level {
    return $p->sql("SELECT on_hand || '/' || reserved || '/' || shortfall"
                   . " || ' v' || version FROM stock_levels"
                   . " WHERE store_id = 'store-1' AND sku = '$_[0]'");
}
sub ledger {
    my ($order) = @_;
    return $p->sql("SELECT string_agg(movement || ':' || sku || ':' || delta"
                   . " || ':' || reserved_delta || ':' || reserved_after, ' '"
                   . " ORDER BY id) FROM stock_ledger WHERE order_id = '"
                   . uuid($order) . "'");
}
sub stock {
    my ($sku) = @_;
    my $v = $p->redis('HGET', 'inv:store-1', $sku);
    return defined $v ? decode_json($v) : undef;
}

# --- the catalog, through the projector ------------------------------------

my @skus = qw(A B C HOT X Y SF);
canonical({ type => 'item.upsert', item => {
              id => 'item-1', name => 'Thing',
              variants => [ map { { sku => $_, price => { amount => '1.00',
                                                          currency => 'EUR' } } }
                            @skus, 'NOSTOCK' ] } },
          map { { type => 'stock.set', store_id => 'store-1', sku => $_,
                  on_hand => { A => 5, B => 3, C => 1, HOT => 50, X => 100000,
                               Y => 100000, SF => 10 }->{$_} } } @skus);
ok($p->wait_for(sub { my $s = stock('SF'); $s && $s->{on_hand} == 10 }),
   'stock levels projected');

# --- reserve, sell, release: answers, ledger, versions ---------------------

is(level('A'), '5/0/0 v1', 'A before');
is(reserve(1, lines([A => 2], [B => 1])), 't|||t', 'order 1 reserved');
is(level('A'), '5/2/0 v2', 'reserved and version up');
is(level('B'), '3/1/0 v2', 'second line too');
is(ledger(1), 'reserve:A:0:2:2 reserve:B:0:1:1', 'ledger rows of the reservation');
is(reserve(1, lines([A => 2], [B => 1])), 't|||f', 'asked again: same answer');
is(level('A'), '5/2/0 v2', '... and nothing changed');
is($p->sql("SELECT count(*) FROM stock_ledger WHERE order_id = '" . uuid(1) . "'"),
   2, '... no new ledger rows');

is(sell(1), 't|||t', 'order 1 sold');
is(level('A'), '3/0/0 v3', 'on_hand and reserved down by the quantity');
is(level('B'), '2/0/0 v3', 'both lines');
is(ledger(1), 'reserve:A:0:2:2 reserve:B:0:1:1 sale:A:-2:-2:0 sale:B:-1:-1:0',
   'sale ledger rows');
is(sell(1), 't|||f', 'sold again: same answer, nothing changed');
is(level('A'), '3/0/0 v3', '... level as it was');
is(release(1), 'f|sold|f', 'a sale is not released');
is(reserve(1, lines([A => 2], [B => 1])), 'f|sold||f', 'nor reserved again');

is(reserve(2, lines([A => 1], [C => 1])), 't|||t', 'order 2 reserved');
is(release(2), 't||t', 'order 2 released');
is(level('A'), '3/0/0 v5', 'stock back, version up');
is(ledger(2), 'reserve:A:0:1:1 reserve:C:0:1:1 release:A:0:-1:0'
   . ' release:C:0:-1:0', 'release ledger rows');
is($p->sql("SELECT string_agg(DISTINCT reason, ',') FROM stock_ledger"
           . " WHERE order_id = '" . uuid(2) . "' AND movement = 'release'"),
   'cancelled', 'with the reason given');
is(release(2), 't||f', 'released again: same answer');
is(level('A'), '3/0/0 v5', '... nothing changed');
is(sell(2), 'f|released||f', 'a released reservation is not sold');
is(release(99), 't|not_reserved|f', 'nothing to release');
is(sell(99), 'f|not_reserved||f', 'nothing to sell');

# --- all or nothing, unknown sku, refusals are final -----------------------

is(reserve(3, lines([A => 1], [B => 3], [C => 1])), 'f|out_of_stock|B|f',
   'one line short: refused, that line named');
is(level('A') . ' ' . level('C'), '3/0/0 v5 1/0/0 v3', 'no line reserved');
is($p->sql("SELECT count(*) FROM stock_reservations WHERE order_id = '"
           . uuid(3) . "'"), 0, 'no reservation rows');
is(reserve(3, lines([A => 1], [B => 1], [C => 1])), 'f|out_of_stock|B|f',
   'asked again: the same refusal');
is(reserve(4, lines([A => 1], [ZZZ => 1])), 'f|unknown_sku|ZZZ|f',
   'a sku no item has: unknown_sku');
is(reserve(5, lines([NOSTOCK => 1])), 'f|out_of_stock|NOSTOCK|f',
   'a known sku without a level: out_of_stock');
is(reserve(6, lines([A => 3], [C => 1])), 't|||t', 'the whole stock of two skus');
is(reserve(7, lines([C => 1])), 'f|out_of_stock|C|f', 'nothing left');

my $err = `psql -Atq -v ON_ERROR_STOP=1 '@{[ $p->conninfo ]}' -c "SELECT stock_reserve('@{[ uuid(8) ]}', 'store-1', '[{\\"sku\\":\\"A\\",\\"quantity\\":1},{\\"sku\\":\\"A\\",\\"quantity\\":1}]', now())" 2>&1`;
like($err, qr/a sku appears twice/, 'a sku twice: an error');
$err = `psql -Atq -v ON_ERROR_STOP=1 '@{[ $p->conninfo ]}' -c "SELECT stock_reserve('@{[ uuid(8) ]}', 'store-1', '[{\\"sku\\":\\"A\\",\\"quantity\\":0}]', now())" 2>&1`;
like($err, qr/lines must be a non-empty array/, 'quantity 0: an error');

# --- expiry ------------------------------------------------------------------

is(release(6), 't||t', 'order 6 released');
is(reserve(10, lines([A => 1]), "now() - interval '1 second'"), 't|||t',
   'order 10 (no saga) reserved, expired');
is(reserve(11, lines([A => 1]), "now() - interval '1 second'"), 't|||t',
   'order 11 (saga running) reserved, expired');
is(reserve(12, lines([A => 1]), "now() - interval '1 second'"), 't|||t',
   'order 12 (saga failed) reserved, expired');
is(reserve(13, lines([B => 1])), 't|||t', 'order 13 reserved, not expired');
for my $s ([11, 'running'], [12, 'failed']) {
    $p->sql("INSERT INTO sagas (id, status, step, sub, store_id, command)"
            . " VALUES ('" . uuid($s->[0]) . "', '$s->[1]', 'reserve', 'u',"
            . " 'store-1', '{}')");
}
is(level('A'), '3/3/0 v10', 'three reserved');
is($p->sql("SELECT string_agg(o::text, ',' ORDER BY o) FROM stock_release_expired(now()) o"),
   join(',', uuid(10), uuid(12)), 'expired and not running: released');
is(level('A'), '3/1/0 v12', 'their stock came back');
is($p->sql("SELECT string_agg(DISTINCT reason, ',') FROM stock_ledger"
           . " WHERE order_id = '" . uuid(10) . "' AND movement = 'release'"),
   'expired', 'ledger reason expired');
is($p->sql("SELECT count(*) FROM stock_release_expired(now())"), 0,
   'again: nothing');
is(release(11) . ' ' . release(13), 't||t t||t', 'the others released by hand');

# --- the read model follows, through the projector's read-model writer -----

ok($p->wait_for(sub { $p->sql("SELECT count(*) FROM outbox") == 0 }),
   'the outbox rows of the reservations drained by the projector');
sub rm_equal {
    my %want = map { split /\t/, $_, 2 }
        split /\n/, $p->sql("SELECT sku || E'\\t' || value FROM rm_stock_values"
                            . " WHERE store_id = 'store-1'");
    for my $sku (sort keys %want) {
        my $got = $p->redis('HGET', 'inv:store-1', $sku);
        return 0 unless defined $got
            && $json->encode(decode_json($got))
               eq $json->encode(decode_json($want{$sku}));
    }
    return 1;
}
ok($p->wait_for(\&rm_equal), 'inv:store-1 equals rm_stock_values');
is($p->sql("SELECT count(*) FROM stock_levels WHERE version > 1"),
   3, 'the levels changed by reservations are versioned');

# --- no oversell: 50 in stock, 200 concurrent reservations of 1 -----------

# Runs $procs children, each one psql session running its statements
# (one transaction each) once $go exists; returns their outputs.
sub storm {
    my ($procs, $go, $stmts) = @_;
    my @kids;
    for my $i (0 .. $procs - 1) {
        my $out = "$p->{dir}/storm.$i";
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            sleep 0.005 until -e $go;
            open STDOUT, '>', $out or POSIX::_exit(1);
            open STDERR, '>&', \*STDOUT;
            exec 'psql', '-Atq', $p->conninfo, map { ('-c', $_) } @{ $stmts->($i) }
                or POSIX::_exit(127);
        }
        push @kids, [$pid, $out];
    }
    return @kids;
}
sub reap {
    my @outs;
    for my $k (@_) {
        waitpid($k->[0], 0);
        push @outs, [$? >> 8, CommerceTest->slurp($k->[1])];
    }
    return @outs;
}

# The sampler: each sample one snapshot of the level and of its
# reservations; it runs until the storm is over.
my $sampler_out = "$p->{dir}/sampler";
my $stop = "$p->{dir}/sampler.stop";
my $go = "$p->{dir}/go";
my $sampler = fork // die;
if ($sampler == 0) {
    open my $fh, '>', $sampler_out or POSIX::_exit(1);
    my $q = "SELECT s.on_hand - s.reserved || ' ' || left((s.reserved = (SELECT"
          . " COALESCE(sum(r.quantity), 0) FROM stock_reservations r WHERE"
          . " r.store_id = s.store_id AND r.sku = s.sku AND r.status ="
          . " 'reserved'))::text, 1) FROM stock_levels s WHERE s.store_id = 'store-1'"
          . " AND s.sku = 'HOT'";
    sleep 0.005 until -e $go;
    until (-e $stop) {
        print $fh `psql -Atq '@{[ $p->conninfo ]}' -c "@{[ join ";", ($q) x 20 ]}" 2>&1`;
    }
    close $fh;
    POSIX::_exit(0);
}

my $t0 = time;
my @kids = storm(40, $go, sub {
    my ($i) = @_;
    [ map { "SELECT left(ok::text, 1) || '|' || COALESCE(reason, '') FROM stock_reserve('"
            . uuid(1000 + $i * 5 + $_) . "', 'store-1',"
            . " '[{\"sku\":\"HOT\",\"quantity\":1}]', now() + interval '1 hour')" }
      0 .. 4 ] });
open my $gfh, '>', $go; close $gfh;
my @outs = reap(@kids);
my $elapsed = time - $t0;
open my $sfh, '>', $stop; close $sfh;
waitpid($sampler, 0);

my %answers;
$answers{$_}++ for map { split /\n/, $_->[1] } @outs;
is_deeply([ grep { $_->[0] != 0 } @outs ], [], 'every session ran');
is($answers{'t|'}, 50, 'exactly 50 reserved');
is($answers{'f|out_of_stock'}, 150, 'exactly 150 out_of_stock');
is(scalar keys %answers, 2, 'no other answer');
is(level('HOT'), '50/50/0 v51', 'HOT: 50 reserved, each a version');
my @samples = split /\n/, CommerceTest->slurp($sampler_out);
cmp_ok(scalar @samples, '>', 0, 'the sampler sampled');
is_deeply([ grep { !/^\d+ t$/ } @samples ], [],
          'every sample: on_hand - reserved >= 0 and reserved = the reservations');
diag(sprintf "200 reservations of HOT from 40 sessions in %.2f s; %d samples",
             $elapsed, scalar @samples);

is($p->sql("SELECT count(*) FROM (SELECT DISTINCT order_id o FROM"
           . " stock_reservations WHERE sku = 'HOT') r, stock_sell(r.o) x WHERE x.ok"), 50,
   'the 50 sold');
is(level('HOT'), '0/0/0 v101', 'HOT: sold out');

# --- no deadlock: opposite line orders, and the projector's batches -------

unlink $go;
my $deadlocks_before = () = CommerceTest->slurp("$p->{dir}/pg/server.log")
                            =~ /deadlock detected/g;
@kids = storm(20, $go, sub {
    my ($i) = @_;
    my @l = $i % 2 ? ([X => 1], [Y => 1]) : ([Y => 1], [X => 1]);
    [ map { ("SELECT ok FROM stock_reserve('" . uuid(5000 + $i * 100 + $_)
             . "', 'store-1', '" . lines(@l) . "', now() + interval '1 hour')",
             "SELECT ok FROM stock_release('" . uuid(5000 + $i * 100 + $_) . "')") }
      0 .. 24 ] });
open $gfh, '>', $go; close $gfh;
# Meanwhile the projector moves both levels in one batch, both orders.
for my $i (1 .. 20) {
    my @c = map { { type => 'stock.adjust', store_id => 'store-1', sku => $_,
                    delta => 1, reason => 'receipt' } } ($i % 2 ? qw(X Y) : qw(Y X));
    canonical(@c);
}
@outs = reap(@kids);
is_deeply([ grep { $_->[0] != 0 } @outs ], [], 'every session ran');
is(scalar(grep { $_ eq 't' } map { split /\n/, $_->[1] } @outs), 1000,
   'every reservation and release answered ok');
ok($p->wait_for(sub { level('X') =~ m{^100020/0/0} && level('Y') =~ m{^100020/0/0} }),
   'the projector applied its 20 batches');
my $deadlocks = () = CommerceTest->slurp("$p->{dir}/pg/server.log")
                     =~ /deadlock detected/g;
is($deadlocks - $deadlocks_before, 0, 'no deadlock (40P01) in the PostgreSQL log');
unlike($p->log_text('projector1'), qr/deadlock/, 'none in the projector log');

# --- a count below what is reserved, through the projector ----------------

is(reserve(20, lines([SF => 4])), 't|||t', 'SF: oldest order, 4');
is(reserve(21, lines([SF => 4])), 't|||t', 'SF: then 4');
is(reserve(22, lines([SF => 2])), 't|||t', 'SF: newest, 2');
is(level('SF'), '10/10/0 v4', 'SF: all reserved');
canonical({ type => 'stock.set', store_id => 'store-1', sku => 'SF', on_hand => 5 });
ok($p->wait_for(sub { level('SF') eq '5/5/5 v5' }),
   'a count of 5: applied, 5 reserved, 5 short');
is($p->sql("SELECT movement || ':' || delta || ':' || reserved_delta || ':'"
           . " || reserved_after FROM stock_ledger WHERE sku = 'SF'"
           . " ORDER BY id DESC LIMIT 1"), 'set:-5:-5:5',
   'its ledger row says what it did to reserved');
is($p->sql("SELECT string_agg(order_id::text || '=' || short, ' ' ORDER BY order_id)"
           . " FROM stock_short_lines WHERE sku = 'SF'"),
   uuid(21) . '=3 ' . uuid(22) . '=2', 'the newest reservations are short');
ok($p->wait_for(sub { my $s = stock('SF'); $s && $s->{version} >= 5
                      && $s->{reserved} == 5 && $s->{available} == 0
                      && !$s->{orderable} }),
   'the read model: reserved 5, available 0, not orderable');
is(reserve(23, lines([SF => 1])), 'f|out_of_stock|SF|f', 'nothing to reserve');
is(sell(21), 'f|short|SF|f', 'a short order is not sold');
is(sell(20), 't|||t', 'the oldest, covered, is');
is(level('SF'), '1/1/5 v6', 'SF after the sale');
is(release(22), 't||t', 'the newest released');
is(level('SF'), '1/1/3 v7', 'its part was short: the shortfall goes down');
canonical({ type => 'stock.adjust', store_id => 'store-1', sku => 'SF',
            delta => 5, reason => 'receipt' });
ok($p->wait_for(sub { level('SF') eq '6/4/0 v8' }),
   'a receipt of 5 covers the shortfall first, 2 available');
is($p->sql("SELECT count(*) FROM stock_short_lines"), 0, 'nothing short');
is(sell(21), 't|||t', 'order 21 sold now');
ok($p->wait_for(sub { $p->sql("SELECT count(*) FROM outbox") == 0 && rm_equal() }),
   'the read model equals PostgreSQL at the end');
is($p->sql("SELECT count(*) FROM stock_levels WHERE on_hand - reserved < 0"
           . " OR (shortfall > 0 AND reserved <> on_hand)"), 0, 'the invariant holds');

is($p->sql("SELECT count(*) FROM dead_letters"), 0, 'the projector refused nothing');

$p->stop;
done_testing;
