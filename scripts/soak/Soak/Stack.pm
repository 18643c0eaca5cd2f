package Soak::Stack;

# The stack of scripts/stack.sh, run by the soak in a directory of its own
# on free ports: start, heal and stop it through stack.sh (what an operator
# runs), and reach into it: pids, PostgreSQL (psql), Redis (a small RESP
# client), the dev broker's control socket, its topics (kcat).
#
#   my $st = Soak::Stack->new(repo => $repo, build => $build, dir => $dir);
#   $st->sh('up');  $st->alive('projector');  $st->sql('SELECT 1');

use strict;
use warnings;

use IO::Socket::INET;
use IO::Socket::UNIX;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

our %PIDFILE = (
    redis => 'redis/redis.pid',
    broker => 'kafka/devbroker.pid',
    projector => 'projector/projector.pid',
    nginx => 'nginx/nginx.pid',
    postgresql => 'pg/postmaster.pid',
);


sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 1, ReuseAddr => 1)
        or die "no free port: $!\n";
    my $p = $s->sockport;
    close $s;
    return $p;
}


sub new {
    my ($class, %o) = @_;
    my $self = bless { %o, run => "$o{dir}/run" }, $class;
    $self->{port}{$_} = free_port() for qw(HTTP REDIS PG METRICS SIM);
    # what stack.sh reads (and the services it starts inherit)
    %ENV = (%ENV,
        COMMERCE_RUN_DIR => $self->{run}, COMMERCE_HOST => '127.0.0.1',
        COMMERCE_HTTP_PORT => $self->{port}{HTTP},
        COMMERCE_REDIS_PORT => $self->{port}{REDIS},
        COMMERCE_PG_PORT => $self->{port}{PG},
        COMMERCE_METRICS_PORT => $self->{port}{METRICS},
        COMMERCE_SIM_METRICS_PORT => $self->{port}{SIM},
        COMMERCE_NGINX_WORKERS => $o{workers} // 2,
        COMMERCE_DEMO_ITEMS => $o{items} // 50,
        COMMERCE_BUILD => $o{build});
    return $self;
}

sub run { $_[0]{run} }
sub base { "http://127.0.0.1:$_[0]{port}{HTTP}" }
sub conninfo { "host=127.0.0.1 port=$_[0]{port}{PG} dbname=commerce "
               . "user=commerce" }


# stack.sh <args>: (exit status, output); the output is kept in
# soak-stack.log.
sub sh {
    my ($self, @args) = @_;
    my $out = `'$self->{repo}/scripts/stack.sh' @args 2>&1`;
    my $rc = $? >> 8;
    if (open my $fh, '>>', "$self->{dir}/soak-stack.log") {
        printf $fh "=== %s stack.sh %s: exit %d\n%s", scalar(gmtime),
               "@args", $rc, $out;
    }
    return ($rc, $out);
}


sub pg_sh {
    my ($self, @args) = @_;
    system("'$self->{repo}/scripts/pg.sh' @args >>'$self->{dir}/soak-stack.log'"
           . " 2>&1");
    return $? >> 8;
}


sub pid {
    my ($self, $name) = @_;
    open my $fh, '<', "$self->{run}/$PIDFILE{$name}" or return undef;
    my $pid = <$fh>;
    return undef unless defined $pid && $pid =~ /^(\d+)/;
    return $1;
}


sub alive {
    my ($self, $name) = @_;
    my $pid = $self->pid($name);
    return $pid && kill(0, $pid) ? 1 : 0;
}


sub signal {
    my ($self, $name, $sig) = @_;
    my $pid = $self->pid($name) or return 0;
    return kill $sig, $pid;
}


# Rows of a query, each an array of its columns (tab-separated by psql).
sub sql {
    my ($self, $q) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        exec 'psql', '-AtqX', '-v', 'ON_ERROR_STOP=1', '-F', "\t",
             $self->conninfo, '-c', $q or POSIX::_exit(127);
    }
    my @rows = map { chomp; [split /\t/, $_, -1] } <$fh>;
    close $fh or die "psql failed: $q\n";
    return @rows;
}

sub sql_value { my @r = $_[0]->sql($_[1]); return @r ? $r[0][0] : undef }


# One line to commerce-devbroker's control socket; its answer.
sub broker {
    my ($self, $cmd) = @_;
    my $s = IO::Socket::UNIX->new(Peer => "$self->{run}/kafka/control.sock")
        or return "err connect: $!";
    print $s "$cmd\n";
    my $answer = <$s> // 'err no answer';
    chomp $answer;
    return $answer;
}


sub bootstrap {
    my ($self) = @_;
    open my $fh, '<', "$self->{run}/kafka/bootstrap" or return undef;
    chomp(my $b = <$fh> // '');
    return $b;
}


# The Kafka headers of every message of a topic, one hash per message.
sub topic_headers {
    my ($self, $topic) = @_;
    my $boot = $self->bootstrap or die "no bootstrap file\n";
    my $cmd = "timeout 120 kcat -C -b '$boot' -t $topic -o beginning -e -q"
              . " -f '%h\\n' 2>/dev/null";
    my @lines = `$cmd`;
    return map {
        chomp;
        my %h = map { split /=/, $_, 2 } split /,(?=[a-z_]+=)/, $_;
        \%h;
    } @lines;
}


# ------------------------------------------------------------ redis ---

sub _resp_read {
    my ($s) = @_;
    my $line = <$s>;
    die "redis: connection closed\n" unless defined $line;
    $line =~ s/\r\n\z//;
    my ($t, $rest) = (substr($line, 0, 1), substr($line, 1));
    return $rest if $t eq '+' || $t eq ':';
    die "redis: $rest\n" if $t eq '-';
    if ($t eq '$') {
        return undef if $rest < 0;
        my $buf = '';
        while (length($buf) < $rest + 2) {
            read($s, $buf, $rest + 2 - length($buf), length($buf))
                or die "redis: short read\n";
        }
        return substr($buf, 0, $rest);
    }
    return $rest < 0 ? undef : [map { _resp_read($s) } 1 .. $rest]
        if $t eq '*';
    die "redis: reply type '$t'\n";
}

# Commands on one connection to 127.0.0.1:<port>; their replies.
sub redis {
    my ($self, $port, @cmds) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 5)
        or die "redis $port: $!\n";
    binmode $s;
    for my $c (@cmds) {
        print $s '*' . @$c . "\r\n"
                 . join('', map { '$' . length($_) . "\r\n$_\r\n" } @$c);
    }
    return map { _resp_read($s) } @cmds;
}


# The read model of the Redis at <port>: key -> its content as text
# (strings as is, hashes as sorted "field=value" lines, sorted sets as
# their members), for the key patterns given.
sub read_model {
    my ($self, $port, @patterns) = @_;
    my %rm;
    for my $pat (@patterns) {
        my ($cursor, @keys) = (0);
        do {
            my ($r) = $self->redis($port, ['SCAN', $cursor, 'MATCH', $pat,
                                           'COUNT', 1000]);
            ($cursor, my $k) = @$r;
            push @keys, @$k;
        } while ($cursor ne '0');
        for my $k (@keys) {
            my ($type) = $self->redis($port, ['TYPE', $k]);
            if ($type eq 'string') {
                ($rm{$k}) = $self->redis($port, ['GET', $k]);
            } elsif ($type eq 'hash') {
                my ($h) = $self->redis($port, ['HGETALL', $k]);
                my %h = @$h;
                $rm{$k} = join "\n", map { "$_=$h{$_}" } sort keys %h;
            } elsif ($type eq 'zset') {
                my ($z) = $self->redis($port, ['ZRANGE', $k, 0, -1]);
                $rm{$k} = join "\n", sort @$z;
            } else {
                $rm{$k} = "<$type>";
            }
        }
    }
    return \%rm;
}

1;
