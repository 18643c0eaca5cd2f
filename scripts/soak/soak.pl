#!/usr/bin/perl
# make soak: the whole stack (scripts/stack.sh: nginx, redis-server,
# PostgreSQL, commerce-devbroker, commerce-projector) under a steady mixed
# load (Soak::Traffic) while faults are injected (Soak::Faults), then the
# promises checked (Soak::Checks). Prints the faults, the requests by
# status and the checks; exits 1 if a check failed. docs/soak.md.
#
# Environment (defaults):
#   SOAK_SECONDS=300   how long the load and the faults run
#   SOAK_RATE=100      requests per second, all clients together
#   SOAK_CLIENTS=6     forked clients (blocking HTTP, keep-alive)
#   SOAK_GAP=8         quiet seconds between two faults
#   SOAK_DRAIN=120     seconds for the retries to be answered afterwards
#   SOAK_ITEMS=50      demo catalog items
#   SOAK_DIR=build/soak/<UTC time>   the run's directory (kept)
#   SOAK_KEEP=1        leave the stack running at the end
#   SOAK_VERBOSE=1     log the faults on stderr as they happen
#   SOAK_SAN=1         the sanitizer build (make soak SAN=1 sets it)
#   COMMERCE_BUILD     the build (make sets it), COMMERCE_LD_PRELOAD the
#                      sanitizer runtimes preloaded into nginx

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin";

use Cwd ();
use POSIX qw(strftime WNOHANG);
use Time::HiRes qw(sleep time);

use Soak::Checks;
use Soak::Faults;
use Soak::Stack;
use Soak::Traffic;

my $repo = "$FindBin::Bin/../..";
my $build = $ENV{COMMERCE_BUILD} // "$repo/build";
my %o = (seconds => $ENV{SOAK_SECONDS} // 300, rate => $ENV{SOAK_RATE} // 100,
         clients => $ENV{SOAK_CLIENTS} // 6, gap => $ENV{SOAK_GAP} // 8,
         drain => $ENV{SOAK_DRAIN} // 120, items => $ENV{SOAK_ITEMS} // 50,
         san => $ENV{SOAK_SAN} // 0);
my $dir = $ENV{SOAK_DIR}
          // "$build/soak/" . strftime('%Y%m%dT%H%M%SZ', gmtime);
system('mkdir', '-p', "$dir/clients", "$dir/san") == 0 or die "mkdir $dir\n";
$dir = Cwd::abs_path($dir);

sub say { print "soak: @_\n" }

# The sanitizers' reports go to files, found by no_sanitizer_report.
if ($o{san}) {
    $ENV{ASAN_OPTIONS} = 'detect_leaks=0:abort_on_error=0:'
                        . "log_path=$dir/san/asan";
    $ENV{UBSAN_OPTIONS} = "print_stacktrace=1:log_path=$dir/san/ubsan";
}

my $st = Soak::Stack->new(repo => $repo, build => $build, dir => $dir,
                          items => $o{items});
my (@kids, $up);

END {
    local $?;
    kill 'TERM', @kids if @kids;
    $st->sh('down') if $up && !$ENV{SOAK_KEEP};
}
$SIG{INT} = $SIG{TERM} = sub { exit 2 };

say("$o{seconds}s, $o{rate} req/s, $o{clients} clients, build $build"
    . ($o{san} ? ' (sanitizers)' : '') . ", in $dir");
my ($rc, $out) = $st->sh('up');
$up = 1;
if ($rc != 0) {
    # say why, if a sanitizer or a dying nginx worker is the cause
    my @why = grep { /runtime error:|AddressSanitizer|exited with code [1-9]/ }
               split /\n/, Soak::Checks::slurp($st->run . '/logs/nginx-error.log');
    die "soak: stack.sh up failed:\n$out"
        . (@why ? "soak: nginx-error.log: " . @why . " such lines, first:\n  "
                   . join("\n  ", @why[0 .. ($#why < 2 ? $#why : 2)]) . "\n"
                 : '');
}

# ------------------------------------------------------------ the load ---

my $prefix = sprintf 'soak-%x', time;
my %base = map { ("$_->[0]/$_->[1]" => $_->[2]) } $st->sql(
    "SELECT store_id, sku, on_hand FROM stock_levels WHERE sku LIKE 'SKU-%'");
my %ctx = (base => $st->base, run => $st->run, prefix => $prefix,
           rate => $o{rate} / $o{clients},
           stock => [map { [split m{/}] } sort keys %base],
           items => [map { $_->[0] } $st->sql(
               "SELECT id FROM products WHERE id LIKE 'item-%'")],
           stores => [map { $_->[0] } $st->sql(
               'SELECT DISTINCT store_id FROM stock_levels')]);
die "soak: no demo stock to adjust\n" unless @{ $ctx{stock} };

for my $c (0 .. $o{clients} - 1) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        @kids = ();
        $up = 0;
        Soak::Traffic::client({ %ctx, client => $c,
                                log => "$dir/clients/$c.log" });
    }
    push @kids, $pid;
}

my $faults = Soak::Faults->new(st => $st, gap => $o{gap},
                               log => "$dir/faults.log");
my $t0 = time;
$faults->run_until($t0 + $o{seconds});
$st->broker('up all');
$faults->supervise;

# ------------------------------------------------- answers and catch-up ---

say(sprintf 'load and faults done after %.0fs; draining the retries',
    time - $t0);
kill 'USR1', @kids;
my $deadline = time + $o{drain};
while (@kids && time < $deadline) {
    @kids = grep { waitpid($_, WNOHANG) == 0 } @kids;
    $faults->supervise;
    sleep 0.5;
}
kill 'TERM', @kids;
waitpid($_, 0) for @kids;
@kids = ();

my (%d, %req, %reasons, %max_ms, @acks, %in_fault, @answers);
my @windows = @{ $faults->{windows} // [] };
for my $f (glob "$dir/clients/*.log") {
    open my $fh, '<', $f or die "$f: $!\n";
    while (<$fh>) {
        chomp;
        my ($t, $gen, $source, $id, $status, $reason, $ms, $ref)
            = split /\t/;
        $req{$gen}{$status}++;
        $max_ms{$gen} = $ms if $ms > ($max_ms{$gen} // 0);
        push @acks, [$t, $t + $ms / 1000] if $status == 202;
        push @answers, [$t, $gen, $status, $ms]
            if $id ne '-' && $status != 200 && $status != 202;
        # during which fault (until its heal finished) it was sent
        for my $w (@windows) {
            $in_fault{$gen}{$status}{ $w->{name} }++
                if $t >= $w->{from} && $t <= ($w->{to} // $w->{from});
        }
        $reasons{$gen}{$status}{$reason} = 1;
        next if $id eq '-';
        my $x = $d{"$source $id"} //= { gen => $gen, source => $source,
                                        id => $id, ref => $ref };
        push @{ $x->{statuses} }, $status;
        $x->{acked} = 1 if $status == 200 || $status == 202;
    }
}

# The projector has caught up when every acknowledged delivery of its
# sources is processed and its outbox is empty.
my @proj = grep { $_->{acked} && Soak::Checks::verify_of($_) eq 'event_store' }
           values %d;
my $seen;
$deadline = time + 120;
while (time < $deadline) {
    $seen = $st->sql_value("SELECT count(*) FROM inbound_processed"
                           . " WHERE dedup_key LIKE '%|$prefix-%'") // 0;
    last if $seen >= @proj
            && $st->sql_value('SELECT count(*) FROM outbox') == 0;
    sleep 0.5;
}
say(sprintf '%d deliveries acknowledged for the projector, %d processed',
    scalar @proj, $seen);

# --rebuild into an empty redis-server, compared with the live read model.
sub rebuild_compare {
    my $port = Soak::Stack::free_port();
    mkdir "$dir/rebuild";
    system('redis-server', '--bind', '127.0.0.1', '--port', $port,
           '--dir', "$dir/rebuild", '--daemonize', 'yes', '--save', '',
           '--pidfile', "$dir/rebuild/redis.pid",
           '--logfile', "$dir/rebuild/redis.log") == 0
        or return (0, 'the second redis-server did not start');
    my $ok = 0;
    for (1 .. 50) { last if eval { $st->redis($port, ['PING']); $ok = 1 };
                    sleep 0.1 }
    return (0, 'the second redis-server does not answer') unless $ok;
    system("'$build/bin/commerce-projector' --config"
           . " '@{[$st->run]}/projector/projector.conf' --rebuild"
           . " --redis.address 127.0.0.1:$port --metrics.port 0"
           . " >'$dir/rebuild/projector.log' 2>&1");
    my $rrc = $? >> 8;
    my @pat = ('cat:*', 'inv:*');
    my $live = $st->read_model($st->{port}{REDIS}, @pat);
    my $want = $st->read_model($port, @pat);
    eval { $st->redis($port, ['SHUTDOWN', 'NOSAVE']) };
    return (0, "--rebuild exited $rrc (see $dir/rebuild/projector.log)")
        if $rrc != 0;
    my @diff = grep { ($live->{$_} // "\0") ne ($want->{$_} // "\0") }
               sort keys %{ { %$live, %$want } };
    my @show = map { my $k = $_;
                     !defined $live->{$k} ? "$k missing"
                     : !defined $want->{$k} ? "$k not in the rebuild"
                     : "$k differs" } @diff[0 .. ($#diff < 4 ? $#diff : 4)];
    return (!@diff, scalar(keys %$want) . ' keys rebuilt; differing: '
            . scalar(@diff) . (@diff ? ' (' . join('; ', @show) . ')' : ''));
}

# ------------------------------------------------------------ checks ---

my %cctx = (st => $st, d => \%d, req => \%req, reasons => \%reasons,
            in_fault => \%in_fault, answers => \@answers, windows => \@windows,
            base_stock => \%base, prefix => $prefix, san => $o{san},
            san_dir => "$dir/san", rebuild => \&rebuild_compare);
my @checks;
for my $c (@Soak::Checks::TABLE) {
    my ($ok, $detail) = eval { $c->{run}->(\%cctx) };
    ($ok, $detail) = (0, "check died: $@") if $@;
    $detail =~ s/\s+\z//;
    push @checks, [!defined $ok ? 'INFO' : $ok ? 'PASS' : 'FAIL', $c->{name},
                    $detail];
}

# ------------------------------------------------------------ report ---

sub table {
    my @rows = @_;
    my @w;
    for my $r (@rows) {
        for my $i (0 .. $#$r) {
            my $l = length($r->[$i] // '');
            $w[$i] = $l if $l > ($w[$i] // 0);
        }
    }
    my $s = '';
    for my $r (@rows) {
        $s .= join('  ', map { sprintf '%-*s', $w[$_], $r->[$_] // '' }
                   0 .. $#$r) =~ s/\s+\z//r . "\n";
    }
    return $s;
}

my %codes;
for my $g (keys %req) { $codes{$_} = 1 for grep { /^\d+$/ } keys %{ $req{$g} } }
my @codes = sort { $a <=> $b } keys %codes;
my @gens = grep { $req{$_} } map { $_->{name} } @Soak::Traffic::TABLE;
my @reqrows = (['generator', @codes, 'total', 'max ms']);
my %col;
for my $g (@gens) {
    my $n = 0;
    $n += $req{$g}{$_} // 0 for @codes;
    $col{$_} += $req{$g}{$_} // 0 for @codes;
    push @reqrows, [$g, map({ $req{$g}{$_} // 0 } @codes), $n,
                    $max_ms{$g}];
}
my $all = 0;
$all += $col{$_} for @codes;
push @reqrows, ['all', map({ $col{$_} } @codes), $all, ''];

my $report = sprintf("soak %s: %ds of load (%d req/s asked, %.0f done) and "
                     . "faults, %s build\n\n", $prefix, $o{seconds}, $o{rate},
                     $all / ($o{seconds} || 1),
                     $o{san} ? 'sanitizer' : 'normal')
    . "faults injected\n"
    . table($faults->report([sort { $a->[0] <=> $b->[0] } @acks])) . "\n"
    . "requests by status (every attempt; 599: client-side timeout or "
    . "connection error)\n" . table(@reqrows) . "\n"
    . "checks\n" . table(['result', 'check', 'detail'], @checks);
print "\n$report";
if (open my $fh, '>', "$dir/report.txt") { print $fh $report }
say("run directory: $dir (report.txt, clients/, faults.log, run/logs/)");

my $failed = grep { $_->[0] eq 'FAIL' } @checks;
say($failed ? "$failed check(s) FAILED" : 'every check passed');
exit($failed ? 1 : 0);
