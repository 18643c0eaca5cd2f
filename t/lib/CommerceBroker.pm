package CommerceBroker;

# A Kafka broker for the webhook tests: build/bin/commerce-devbroker (the
# librdkafka mock cluster) started in a CommerceTest's temp dir with a
# bootstrap file and a control socket, faults injected through that socket,
# topics read back with kcat.  Perl core modules only.
#
#   CommerceBroker->skip_unless_available;     # plan skip_all without it
#   my $t = CommerceTest->new;
#   my $b = CommerceBroker->new($t, consume_timeout => 60);
#   my $bs = $b->bootstrap;                    # "127.0.0.1:p1,..." for nginx
#   $b->control('down all');                   # 'up all', 'down 2', 'status'
#   my @m = $b->consume('commerce.inbound');   # every message of the topic:
#       # { partition, offset, key, value, h => { source => ..., ... } }
#   $b->stop;                                  # also when $b is destroyed
#
#   use CommerceBroker qw(wait_for);
#   wait_for(sub { ... }, 100);                # polls, 50 ms apart
#
# Options of new: brokers (3), partitions (3), consume_timeout (seconds
# after which a kcat read is cut, through timeout(1); none when not given).
# The broker's files are <dir>/bootstrap, <dir>/broker.ctl and
# <dir>/broker.log.
#
# Environment: COMMERCE_BUILD (build dir, default <repo>/build; the
# devbroker is taken from <repo>/build when that dir has none).

use strict;
use warnings;

use Exporter qw(import);
use IO::Socket::UNIX;
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep);

use CommerceTest;

our @EXPORT_OK = qw(wait_for);


# The commerce-devbroker binary: COMMERCE_BUILD's, else the repository's.
sub devbroker_path {
    my $build = $ENV{COMMERCE_BUILD} // "$CommerceTest::REPO/build";
    my $devbroker = "$build/bin/commerce-devbroker";
    $devbroker = "$CommerceTest::REPO/build/bin/commerce-devbroker"
        unless -x $devbroker;
    return $devbroker;
}


# Skips the whole test file (plan skip_all) when the devbroker is not built
# or kcat is not installed: the tests need both.
sub skip_unless_available {
    plan skip_all => 'commerce-devbroker not built (make workers)'
        unless -x devbroker_path();
    plan skip_all => 'kcat not installed'
        unless system('sh', '-c', 'command -v kcat >/dev/null') == 0;
}


# Starts the devbroker and waits for its bootstrap file, so that the
# brokers listen when new returns.
sub new {
    my ($class, $t, %o) = @_;

    my $dir = $t->dir;
    my $bootfile = "$dir/bootstrap";
    my $ctl = "$dir/broker.ctl";

    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', "$dir/broker.log" or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT;
        exec devbroker_path(), "--bootstrap-file=$bootfile",
             "--control=$ctl", '--brokers=' . ($o{brokers} // 3),
             '--partitions=' . ($o{partitions} // 3)
            or POSIX::_exit(127);
    }

    for (1 .. 200) {
        last if -s $bootfile;
        die "devbroker exited\n" if waitpid($pid, WNOHANG) == $pid;
        sleep 0.05;
    }

    open my $fh, '<', $bootfile or die "devbroker did not start\n";
    my $bs = <$fh>;
    close $fh;
    chomp $bs;

    return bless { pid => $pid, owner => $$, ctl => $ctl, bootstrap => $bs,
                   consume_timeout => $o{consume_timeout} }, $class;
}


sub bootstrap { $_[0]{bootstrap} }


# Sends one command on the control socket; dies unless the reply is "ok".
sub control {
    my ($self, $cmd) = @_;

    my $s = IO::Socket::UNIX->new(Peer => $self->{ctl})
        or die "devbroker control: $!\n";
    print {$s} "$cmd\n";
    shutdown $s, 1;
    my $reply = join '', <$s>;
    close $s;
    die "devbroker '$cmd': $reply" unless $reply =~ /^ok/;

    return $reply;
}


sub stop {
    my ($self) = @_;

    # only the process that started the broker stops it, not a fork
    return unless $self->{pid} && $$ == $self->{owner};
    kill 'TERM', $self->{pid};
    waitpid $self->{pid}, 0;
    $self->{pid} = undef;
}


sub DESTROY { $_[0]->stop }


# Every message of a topic, from the beginning to the current end.  kcat
# prints lengths before key and value, so that any bytes parse; the header
# names split the header line, whose values may hold commas.
sub consume {
    my ($self, $topic) = @_;

    # bounded when asked: a consumer must not hang the suite
    my @bound = defined $self->{consume_timeout}
                ? ('timeout', $self->{consume_timeout}) : ();

    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>', '/dev/null';
        exec @bound, 'kcat', '-C', '-b', $self->{bootstrap}, '-t', $topic,
             '-o', 'beginning', '-e', '-q',
             '-f', "MSG %p %o %K %S\n%k%s\n%h\n"
            or POSIX::_exit(127);
    }
    binmode $fh;
    local $/;
    my $out = <$fh> // '';
    close $fh;

    my @msgs;
    my $names = qr/source|delivery_id|signature_scheme|received_at|
                   content_type|traceparent|command_type|command_id|sub|
                   idempotency_key/x;

    while ($out =~ /\GMSG (\d+) (\d+) (-?\d+) (-?\d+)\n/gc) {
        my ($p, $o, $klen, $vlen) = ($1, $2, $3, $4);
        my $pos = pos $out;
        my $key = $klen >= 0 ? substr($out, $pos, $klen) : undef;
        $pos += $klen if $klen > 0;
        my $value = $vlen >= 0 ? substr($out, $pos, $vlen) : undef;
        $pos += $vlen if $vlen > 0;
        $pos++;                                     # "\n"
        my $nl = index($out, "\n", $pos);
        my $hdr = substr($out, $pos, $nl - $pos);
        pos($out) = $nl + 1;

        my %h;
        for my $kv (split /,(?=(?:$names)=)/, $hdr) {
            my ($k, $v) = split /=/, $kv, 2;
            $h{$k} = $v // '';
        }

        push @msgs, { partition => $p, offset => $o, key => $key,
                      value => $value, h => \%h };
    }

    return @msgs;
}


# Polls (bounded) until the code returns true; returns that value, or
# undef after the tries (200, 50 ms apart).
sub wait_for {
    my ($code, $tries) = @_;
    for (1 .. $tries // 200) {
        my $v = $code->();
        return $v if $v;
        sleep 0.05;
    }
    return undef;
}


1;
