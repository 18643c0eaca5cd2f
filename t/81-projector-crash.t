#!/usr/bin/perl

# commerce-projector under failure: kill -9 mid-batch, PostgreSQL stopped
# and started under load, a COMMIT in flight refused, two projectors
# sharing the partitions. Every message must be applied exactly once: one
# stock event and one ledger row per message, on_hand equal to the number
# of +1 movements, every message archived once (the archive commits apart,
# before its batch), Redis equal to PostgreSQL.

use strict;
use warnings;

use JSON::PP;
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep);

use lib 't/lib';
use CommerceProj;

my $p = CommerceProj->new(partitions => 4);
my @skus = map { sprintf 'SKU-%03d', $_ } 1 .. 20;
# Stock is for skus of an item (proj_known.h): the catalog has them, put
# there directly so that only the movements go through the projector.
$p->sql("INSERT INTO products (id, name, source) VALUES ('item-t81', 'T81', 'test');"
        . " INSERT INTO variants (sku, item_id, position) SELECT"
        . " format('SKU-%s', lpad(i::text, 3, '0')), 'item-t81', i"
        . " FROM generate_series(1, 20) AS i");
my $sent = 0;

# n messages, each a +1 movement of one sku, spread over stores (keys)
# and so over partitions. No delivery id: messages are told apart by
# topic/partition/offset.
sub produce_moves {
    my ($n) = @_;
    my @lines;
    for (1 .. $n) {
        my $i = $sent++;
        my $store = 'store-' . ($i % 4);
        push @lines, "$store\t" . encode_json({ type => 'stock.adjust',
            store_id => $store, sku => $skus[$i % @skus], delta => 1,
            reason => 'receipt' });
    }
    $p->produce_many({ source => 'canonical' }, @lines);
}

sub applied { $p->sql("SELECT count(*) FROM stock_ledger") }

sub check_exactly_once {
    my ($what) = @_;
    ok($p->wait_for(sub { applied() == $sent }, "$sent applied", 120),
       "$what: all $sent messages applied");
    is($p->sql("SELECT count(*) FROM event_store"
               . " WHERE event_type = 'inventory.stock.changed'"), $sent,
       "$what: one stock event per message");
    is($p->sql('SELECT count(*) FROM inbound_processed'), $sent,
       "$what: each message processed once");
    is($p->sql('SELECT count(*) FROM inbound_archive'), $sent,
       "$what: each message archived once");
    is($p->sql('SELECT count(*) FROM inbound_processed p JOIN inbound_archive a'
               . ' USING (topic, partition, "offset")'), $sent,
       "$what: each claim names its archived message");
    is($p->sql('SELECT sum(on_hand) FROM stock_levels'), $sent,
       "$what: on_hand sums to the movements");
    is($p->sql("SELECT sum(next_offset) FROM consumer_offsets"), $sent,
       "$what: stored offsets cover every message");
    ok($p->wait_for(sub { $p->sql('SELECT count(*) FROM outbox') == 0 }),
       "$what: outbox drained");

    my $mismatch = 0;
    for my $row (split /\n/, $p->sql('SELECT store_id, sku, on_hand, version'
                                     . ' FROM stock_levels')) {
        my ($store, $sku, $on_hand, $version) = split /\|/, $row;
        my $v = decode_json($p->redis('HGET', "inv:$store", $sku) // '{}');
        $mismatch++ unless ($v->{on_hand} // -1) == $on_hand
                           && ($v->{version} // -1) == $version;
    }
    is($mismatch, 0, "$what: redis equals PostgreSQL");
}

# --- kill -9 mid-batch, then restart -------------------------------------

produce_moves(3000);
my $pid = $p->start_projector('--kafka.batch_max', 50);
ok($p->wait_for(sub { applied() > 0 }), 'projector started applying');
$p->stop_proc($pid, 'KILL');
my $partial = applied();
cmp_ok($partial, '<', $sent, "killed mid-stream ($partial of $sent)");

$pid = $p->start_projector('--kafka.batch_max', 50);
check_exactly_once('kill -9');

# --- PostgreSQL stopped and started under load ---------------------------

produce_moves(1000);
ok($p->wait_for(sub { applied() > 3000 }), 'applying the second load');
$p->stop_pg;
produce_moves(1000);
sleep 1;
$p->start_pg_again;
check_exactly_once('postgres restart');
like($p->log_text('projector2'), qr/will retry/, 'the outage was retried');

# --- a COMMIT in flight that fails ---------------------------------------

# A batch's COMMIT is left in flight while the next batch is parsed; if it
# fails, the batch is applied again from the messages it kept. A deferred
# trigger refuses the next two COMMITs that add ledger rows (serialization
# failure, retried); a sequence counts them, as it is not rolled back.
$p->sql(<<'SQL');
CREATE SEQUENCE t_refuse_commit;
CREATE FUNCTION t_refuse_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF nextval('t_refuse_commit') <= 2 THEN
        RAISE EXCEPTION 'COMMIT refused by the test'
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER t_refuse_commit AFTER INSERT ON stock_ledger
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    EXECUTE FUNCTION t_refuse_commit();
SQL
produce_moves(1000);
check_exactly_once('refused COMMIT');
like($p->log_text('projector2'),
     qr/not committed, will retry: COMMIT: \[40001\] .*refused by the test/,
     'the COMMIT in flight failed, and its batch was applied again');
$p->sql('DROP TRIGGER t_refuse_commit ON stock_ledger;'
        . ' DROP FUNCTION t_refuse_commit(); DROP SEQUENCE t_refuse_commit');

# --- Redis stopped and resumed under load --------------------------------

# Writes of the read model fail meanwhile (timeouts); the batches go on
# committing, and once Redis answers again the values left in the outbox
# are written too, under load, not only when the projector idles.
produce_moves(1000);
my $before = $sent - 1000;
ok($p->wait_for(sub { applied() > $before }), 'applying the third load');
kill 'STOP', $p->t->{redis_pid};
produce_moves(1000);
sleep 2;
kill 'CONT', $p->t->{redis_pid};
produce_moves(1000);
check_exactly_once('redis stopped');
like($p->log_text('projector2'), qr/read model not written yet/,
     'the Redis outage was retried');

# --- two projectors share the partitions ---------------------------------

my $m1 = $p->t->port('M1');
my $m2 = $p->t->port('M2');
$p->stop_proc($pid, 'TERM');
my @pids = ($p->start_projector('--metrics.port', $m1),
            $p->start_projector('--metrics.port', $m2));
ok($p->wait_for(sub {
    my $a = () = $p->log_text('projector3') =~ /partition assigned/g;
    my $b = () = $p->log_text('projector4') =~ /partition assigned/g;
    $a > 0 && $b > 0 }), 'both projectors got partitions');
produce_moves(2000);
check_exactly_once('two projectors');


my @counts;
for my $port ($m1, $m2) {
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die;
    print $s "GET /metrics HTTP/1.0\r\n\r\n";
    local $/;
    my $body = <$s>;
    push @counts, $body =~ /projector_messages_total\{result="applied"\} (\d+)/ ? $1 : 0;
}
ok($counts[0] > 0 && $counts[1] > 0, "both applied messages (@counts)");

is($p->stop_proc($_, 'TERM'), 0, 'SIGTERM exit 0') for @pids;

$p->stop;
done_testing();
