#!/usr/bin/perl
# commerce-devbroker: an embedded Kafka cluster (librdkafka mock) that
# external clients reach over the real protocol on loopback ports.
# Self-contained (core modules only); talks to the broker with kcat.

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);
use File::Spec;
use IO::Socket::UNIX;
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep);
use FindBin;

my $root  = File::Spec->rel2abs("$FindBin::Bin/..");
my $build = $ENV{COMMERCE_BUILD} || "$root/build";
my $bin   = "$build/bin/commerce-devbroker";

plan skip_all => "$bin not built (make workers)" unless -x $bin;
plan skip_all => 'kcat not installed'
    unless system('sh', '-c', 'command -v kcat >/dev/null') == 0;

my $dir       = tempdir('devbroker-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $bootfile  = "$dir/bootstrap";
my $ctl       = "$dir/control.sock";
my $log       = "$dir/broker.log";

# --help and flag validation run without starting a cluster.
my $help = `$bin --help`;
is($? >> 8, 0, '--help exits 0');
like($help, qr/--control=STR/, '--help lists --control');
like($help, qr/COMMERCE_BROKERS/, '--help names the environment variables');
my $bad = `$bin --brokers=0 2>&1`;
is($? >> 8, 2, 'out-of-range --brokers exits 2');
my ($badlog) = map { decode_json($_) } grep { /^\{/ } split /\n/, $bad;
like($badlog->{msg}, qr/"brokers" from flag --brokers: 0 is out of range/,
     'the error names the option and its source');

my $pid = fork() // die "fork: $!";
if ($pid == 0) {
    open(STDERR, '>', $log) or die "$log: $!";
    open(STDOUT, '>&', \*STDERR) or die;
    exec($bin, '--bootstrap-file', $bootfile, "--control=$ctl",
         '--brokers', '3') or die "exec $bin: $!";
}

# Wait for the bootstrap file, which appears only once the cluster is up.
for (1 .. 200) {
    last if -s $bootfile;
    last if waitpid($pid, WNOHANG) == $pid;
    sleep 0.05;
}
ok(-s $bootfile, 'bootstrap file written') or diag(slurp($log));
my $bootstrap = slurp($bootfile);
chomp $bootstrap;
like($bootstrap, qr/^127\.0\.0\.1:\d+(,127\.0\.0\.1:\d+){2}$/,
     'three loopback brokers in the bootstrap list');

# Metadata: default topics, six partitions each, three brokers.
my $md = decode_json(run_kcat('-L', '-J'));
is(scalar @{ $md->{brokers} }, 3, 'metadata lists 3 brokers');
my %parts = map { $_->{topic} => scalar @{ $_->{partitions} } }
            @{ $md->{topics} };
for my $t (qw(commerce.inbound commerce.events commerce.dlq
              commerce.commands))
{
    is($parts{$t}, 6, "topic $t has 6 partitions");
}
my ($p0) = map { $_->{partitions}[0] }
           grep { $_->{topic} eq 'commerce.events' } @{ $md->{topics} };
is(scalar @{ $p0->{replicas} }, 3, 'replication factor defaults to 3');

# One client produces, another consumes.
is(produce('commerce.events', 'k1:v1', 'k2:v2', 'k3:v3'), 0,
   'kcat produces 3 messages');
is_deeply([sort(consume('commerce.events'))], ['k1=v1', 'k2=v2', 'k3=v3'],
          'a second kcat consumes them');

# Control channel.
my $sock = IO::Socket::UNIX->new(Peer => $ctl, Type => SOCK_STREAM)
    or die "connect $ctl: $!";
like(command($sock, 'status'), qr/^ok brokers=3 up=1,2,3 down= bootstrap=\Q$bootstrap\E$/,
     'status lists every broker up');
like(command($sock, 'down 9'), qr/^err unknown broker/, 'unknown broker id');
like(command($sock, 'frobnicate'), qr/^err usage/, 'unknown command');
is(command($sock, 'down 2'), 'ok', 'one broker down');
like(command($sock, 'status'), qr/ up=1,3 down=2 /, 'status shows it down');
is(command($sock, 'up 2'), 'ok', 'and up again');

is(command($sock, 'down all'), 'ok', 'all brokers down');
like(command($sock, 'status'), qr/ up= down=1,2,3 /, 'status shows all down');
isnt(quietly(sub { produce('commerce.events', 'lost:during-outage') }), 0,
     'producing fails while every broker is down');

is(command($sock, 'up all'), 'ok', 'all brokers up');
is(produce('commerce.events', 'k4:v4'), 0, 'producing works again');
is_deeply([sort(consume('commerce.events'))],
          ['k1=v1', 'k2=v2', 'k3=v3', 'k4=v4'],
          'the log holds what was acknowledged and nothing else');
close($sock);

# Clean exit on SIGTERM.
kill('TERM', $pid);
my $done = 0;
for (1 .. 200) {
    if (waitpid($pid, WNOHANG) == $pid) {
        $done = 1;
        last;
    }
    sleep 0.05;
}
ok($done, 'broker exits after SIGTERM') or kill('KILL', $pid);
is($? >> 8, 0, 'exit status 0') if $done;
ok(!-e $bootfile, 'bootstrap file removed');
ok(!-e $ctl, 'control socket removed');
like(slurp($log), qr/^\{"ts":"[^"]+Z","level":"info","worker":"devbroker","msg":"cluster up"/m,
     'JSON log lines on stderr');

done_testing();


sub slurp {
    my ($path) = @_;
    open(my $fh, '<', $path) or return '';
    local $/;
    return scalar <$fh>;
}


sub run_kcat {
    my @args = @_;
    open(my $fh, '-|', 'kcat', '-b', $bootstrap, @args) or die "kcat: $!";
    local $/;
    my $out = <$fh>;
    close($fh);
    return $out;
}


# Produces key:value lines; returns kcat's exit status. A bounded message
# timeout makes a dead cluster fail instead of retrying forever.
sub produce {
    my ($topic, @lines) = @_;
    open(my $fh, '|-', 'kcat', '-b', $bootstrap, '-P', '-t', $topic, '-K:',
         '-X', 'message.timeout.ms=5000', '-X', 'log_level=0')
        or die "kcat: $!";
    print $fh "$_\n" for @lines;
    close($fh);
    return $? >> 8;
}


# Runs code with stderr sent to /dev/null (kcat's expected outage noise).
sub quietly {
    my ($code) = @_;
    open(my $saved, '>&', \*STDERR) or die;
    open(STDERR, '>', '/dev/null') or die;
    my $rc = $code->();
    open(STDERR, '>&', $saved) or die;
    return $rc;
}


sub consume {
    my ($topic) = @_;
    my $out = run_kcat('-C', '-t', $topic, '-e', '-q', '-K:',
                       '-f', '%k=%s\n');
    return split /\n/, $out;
}


sub command {
    my ($s, $line) = @_;
    print $s "$line\n";
    my $reply = <$s>;
    die "control channel closed" unless defined $reply;
    chomp $reply;
    return $reply;
}
