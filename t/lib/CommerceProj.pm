package CommerceProj;

# The projection pipeline for tests, without nginx: a private PostgreSQL
# (scripts/pg.sh), redis-server (CommerceTest), commerce-devbroker, the
# migrations, and any number of commerce-projector processes.
#
#   my $p = CommerceProj->new;              # starts pg, redis, broker, migrate
#   my $pid = $p->start_projector;
#   $p->produce(key => 'm-1', headers => { source => 'canonical' },
#               body => '{...}');
#   $p->wait_for(sub { $p->sql('SELECT count(*) FROM event_store') == 3 });
#   $p->stop;

use strict;
use warnings;

use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);

use CommerceTest;

sub new {
    my ($class, %opts) = @_;

    my $t = CommerceTest->new(no_module => 1);
    my $build = $ENV{COMMERCE_BUILD} // "$CommerceTest::REPO/build";
    my $self = bless {
        t => $t,
        dir => $t->dir,
        bin => "$build/bin",
        procs => {},
        owner => $$,
    }, $class;

    for my $b (qw(commerce-projector commerce-migrate commerce-devbroker
                  commerce-replay)) {
        BAIL_OUT("$self->{bin}/$b is not built") unless -x "$self->{bin}/$b";
    }

    $t->start_redis;
    $self->start_pg;
    $self->start_broker(%opts);
    $self->migrate;

    return $self;
}

sub t { $_[0]{t} }
sub dir { $_[0]{dir} }
sub conninfo { $_[0]{conninfo} }
sub bootstrap_file { "$_[0]{dir}/kafka.bootstrap" }


sub start_pg {
    my ($self) = @_;

    my $port = $self->{t}->port('PG');
    my $out = `$CommerceTest::REPO/scripts/pg.sh start $self->{dir}/pg $port 2>&1`;
    die "pg.sh start failed: $out" if $?;
    ($self->{conninfo}) = $out =~ /^(host=.*)$/m;
    $self->{pg_port} = $port;
}


sub stop_pg {
    my ($self) = @_;
    system("$CommerceTest::REPO/scripts/pg.sh stop $self->{dir}/pg >/dev/null 2>&1");
}


sub start_pg_again {
    my ($self) = @_;
    my $out = `$CommerceTest::REPO/scripts/pg.sh start $self->{dir}/pg $self->{pg_port} 2>&1`;
    die "pg.sh start failed: $out" if $?;
}


sub spawn {
    my ($self, $name, @cmd) = @_;

    my $log = "$self->{dir}/$name.log";
    my $pid = fork // die "fork: $!";

    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log;
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }

    $self->{procs}{$pid} = $name;

    return $pid;
}


sub start_broker {
    my ($self, %opts) = @_;

    unlink $self->bootstrap_file;
    $self->{broker} = $self->spawn('broker', "$self->{bin}/commerce-devbroker",
        '--brokers', 1, '--partitions', $opts{partitions} // 4,
        '--bootstrap-file', $self->bootstrap_file);
    $self->wait_for(sub { -s $self->bootstrap_file }, 'broker bootstrap file');
}


sub brokers {
    my ($self) = @_;
    open my $fh, '<', $self->bootstrap_file or die;
    my $b = <$fh>;
    chomp $b;
    return $b;
}


sub migrate {
    my ($self) = @_;
    my $out = `$self->{bin}/commerce-migrate --pg.conninfo '$self->{conninfo}' --sql-dir $CommerceTest::REPO/sql 2>&1`;
    die "migrate failed: $out" if $?;
}


sub projector_args {
    my ($self, @extra) = @_;
    return ("$self->{bin}/commerce-projector",
            '--pg.conninfo', $self->{conninfo},
            '--redis.address', '127.0.0.1:' . $self->{t}->redis_port,
            '--kafka.bootstrap_file', $self->bootstrap_file,
            '--kafka.session_timeout', '6s',
            '--log_level', 'info', @extra);
}


sub start_projector {
    my ($self, @extra) = @_;
    my $n = ++$self->{nproj};
    return $self->spawn("projector$n", $self->projector_args(@extra));
}


# Runs a command to completion (e.g. --rebuild, commerce-replay).
sub run {
    my ($self, @cmd) = @_;
    my $out = `@{[ join ' ', map { "'$_'" } @cmd ]} 2>&1`;
    return ($? >> 8, $out);
}


sub replay {
    my ($self, @args) = @_;
    return $self->run("$self->{bin}/commerce-replay", '--pg.conninfo',
                      $self->{conninfo}, '--kafka.bootstrap_file',
                      $self->bootstrap_file, @args);
}


sub stop_proc {
    my ($self, $pid, $sig) = @_;

    kill $sig // 'TERM', $pid;
    my $rc;
    for (1 .. 300) {
        if (waitpid($pid, WNOHANG) == $pid) {
            $rc = $?;
            last;
        }
        sleep 0.05;
    }
    if (!defined $rc) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
        $rc = $?;
    }
    delete $self->{procs}{$pid};
    return $rc;
}


# Produces one message with kcat; headers is a hash or an array of pairs;
# partition, if given, is the partition (else the key's).
sub produce {
    my ($self, %m) = @_;

    my @h = ref $m{headers} eq 'HASH' ? %{ $m{headers} } : @{ $m{headers} // [] };
    my @cmd = ('kcat', '-P', '-b', $self->brokers, '-t',
               $m{topic} // 'commerce.inbound');
    push @cmd, '-k', $m{key} if defined $m{key};
    push @cmd, '-p', $m{partition} if defined $m{partition};
    while (my ($k, $v) = splice @h, 0, 2) {
        push @cmd, '-H', "$k=$v";
    }

    open my $fh, '|-', @cmd or die "kcat: $!";
    binmode $fh;
    print $fh $m{body};
    close $fh or die "kcat failed: $?";
}


# Many messages at once: lines "key\tbody" through kcat -K.
sub produce_many {
    my ($self, $headers, @lines) = @_;

    my @cmd = ('kcat', '-P', '-b', $self->brokers, '-t', 'commerce.inbound',
               '-K', "\t");
    for my $k (sort keys %$headers) {
        push @cmd, '-H', "$k=$headers->{$k}";
    }

    open my $fh, '|-', @cmd or die "kcat: $!";
    print $fh "$_\n" for @lines;
    close $fh or die "kcat failed: $?";
}


sub sql {
    my ($self, $q) = @_;
    open my $fh, '-|', 'psql', '-Atq', '-v', 'ON_ERROR_STOP=1', $self->{conninfo},
        '-c', $q or die "psql: $!";
    local $/;
    my $out = <$fh>;
    close $fh;
    $out =~ s/\s+\z// if defined $out;
    return $out // '';
}


sub redis { my $self = shift; return ($self->{t}->redis_cmd(@_))[0] }


sub wait_for {
    my ($self, $cond, $what, $secs) = @_;

    my $deadline = time + ($secs // 60);
    while (time < $deadline) {
        return 1 if $cond->();
        sleep 0.1;
    }
    diag("timed out waiting for " . ($what // 'condition'));
    return 0;
}


sub log_text {
    my ($self, $name) = @_;
    return CommerceTest->slurp("$self->{dir}/$name.log");
}


sub stop {
    my ($self) = @_;

    return if $$ != $self->{owner} || $self->{stopped}++;

    for my $pid (grep { $self->{procs}{$_} ne 'broker' } keys %{ $self->{procs} }) {
        $self->stop_proc($pid);
    }
    $self->stop_proc($self->{broker}) if $self->{broker};
    $self->stop_pg;
    $self->{t}->stop_redis if $self->{t};
}


sub DESTROY { $_[0]->stop }

1;
