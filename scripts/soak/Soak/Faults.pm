package Soak::Faults;

# The soak's fault injector and supervisor. The faults run one after the
# other, in the order of the table, round after round, with a quiet gap
# between two; each: inject, hold, heal. Healing is what an operator
# does: mostly `stack.sh up`, which starts what is not running (a killed
# Redis comes back empty and the projector rebuilds the read model). The
# supervisor, between faults, restarts whatever died by itself the same
# way and counts it.
#
# A fault: name, what it does (for the report), hold (seconds), inject
# ($st) and heal ($st; undef: none needed). Later issues add theirs.

use strict;
use warnings;

use Time::HiRes qw(sleep time);

sub up { my ($st) = @_; my ($rc) = $st->sh('up'); return $rc == 0 }

# SIGKILL, and back once the process is gone (a heal that came sooner
# would find it still running).
sub kill_wait {
    my ($st, $name) = @_;
    my $pid = $st->pid($name) or return 0;
    kill 'KILL', $pid or return 0;
    for (1 .. 100) {
        return 1 unless kill 0, $pid;
        sleep 0.05;
    }
    return 0;
}

our @TABLE = (
    { name => 'broker_down', hold => 8,
      what => 'every dev broker down (control socket), then up',
      inject => sub { $_[0]->broker('down all') =~ /^ok/ },
      heal => sub { $_[0]->broker('up all') =~ /^ok/ } },
    { name => 'redis_freeze', hold => 6,
      what => 'redis-server SIGSTOP, then SIGCONT',
      inject => sub { $_[0]->signal('redis', 'STOP') },
      heal => sub { $_[0]->signal('redis', 'CONT') } },
    { name => 'projector_kill9', hold => 0,
      what => 'commerce-projector SIGKILL, restarted by stack.sh up',
      inject => sub { kill_wait($_[0], 'projector') },
      heal => \&up },
    { name => 'pg_restart', hold => 2,
      what => 'PostgreSQL fast shutdown, then stack.sh up',
      inject => sub { $_[0]->pg_sh('stop', $_[0]->run . '/pg') == 0 },
      heal => \&up },
    { name => 'nginx_reload', hold => 0,
      what => 'stack.sh reload (nginx -s reload)',
      inject => sub { my ($rc) = $_[0]->sh('reload'); $rc == 0 },
      heal => undef },
    { name => 'redis_kill', hold => 2,
      what => 'redis-server SIGKILL, then stack.sh up (rebuild)',
      inject => sub { kill_wait($_[0], 'redis') },
      heal => \&up },
);

our @SERVICES = qw(redis postgresql broker projector nginx);


sub new {
    my ($class, %o) = @_;
    my $self = bless { st => $o{st}, gap => $o{gap} // 8, log => $o{log},
                       stats => {}, restarts => {} }, $class;
    $self->{stats}{$_->{name}} = { n => 0, failed => 0, held => 0,
                                   heal_s => 0, heal_max => 0 }
        for @TABLE;
    return $self;
}

sub note {
    my ($self, $fmt, @a) = @_;
    my $line = sprintf "%s $fmt\n", scalar(gmtime), @a;
    print STDERR "soak: $line" if $ENV{SOAK_VERBOSE};
    if (open my $fh, '>>', $self->{log}) { print $fh $line }
}


# Restarts (stack.sh up) whatever is not running; counts each service
# found dead.
sub supervise {
    my ($self) = @_;
    my @dead = grep { !$self->{st}->alive($_) } @SERVICES;
    return 1 unless @dead;
    $self->{restarts}{$_}++ for @dead;
    $self->note('supervisor: not running: %s: stack.sh up', "@dead");
    return up($self->{st});
}


# Quiet for a while, supervising.
sub quiet {
    my ($self, $secs) = @_;
    my $end = time + $secs;
    while (time < $end) {
        $self->supervise;
        sleep 0.5;
    }
}


sub inject {
    my ($self, $f) = @_;
    my $s = $self->{stats}{$f->{name}};
    $s->{n}++;
    my $w = { name => $f->{name}, from => time };
    push @{ $self->{windows} }, $w;
    $self->note('fault %s: inject', $f->{name});
    $f->{inject}->($self->{st}) or do {
        $s->{failed}++;
        $self->note('fault %s: inject failed', $f->{name});
    };
    sleep $f->{hold};
    $s->{held} += $f->{hold};
    $w->{to} = time;
    return unless $f->{heal};
    my $t0 = time;
    my $ok = $f->{heal}->($self->{st});
    # a heal that did not work is retried by the supervisor
    $ok = $self->supervise if !$ok;
    my $d = time - $t0;
    $w->{to} = time;
    $s->{heal_s} += $d;
    $s->{heal_max} = $d if $d > $s->{heal_max};
    $self->note('fault %s: healed in %.1fs%s', $f->{name}, $d,
                $ok ? '' : ' (not yet: supervisor retries)');
    $s->{failed}++ unless $ok;
}


# Faults until <deadline> (time()); the stack is healthy afterwards.
sub run_until {
    my ($self, $deadline) = @_;
    my $i = 0;
    while (time + $self->{gap} < $deadline) {
        $self->quiet($self->{gap});
        last if time >= $deadline;
        $self->inject($TABLE[$i++ % @TABLE]);
    }
    $self->quiet($deadline - time) if time < $deadline;
}


# The table of the report. acks: [sent, answered] of every 202, by sent
# time: the first one sent after a fault was healed says how long the
# ingress took to recover.
sub report {
    my ($self, $acks) = @_;
    my (%rec, $i);
    for my $w (@{ $self->{windows} }) {
        $i = 0;
        $i++ while $i < @$acks && $acks->[$i][0] < $w->{to};
        next unless $i < @$acks;
        my $r = $acks->[$i][1] - $w->{to};
        my $x = $rec{ $w->{name} } //= { n => 0, sum => 0, max => 0 };
        $x->{n}++;
        $x->{sum} += $r;
        $x->{max} = $r if $r > $x->{max};
    }
    my @rows = map {
        my $s = $self->{stats}{$_->{name}};
        my $x = $rec{ $_->{name} };
        [$_->{name}, $s->{n}, $s->{failed}, $s->{held},
         $s->{n} && $_->{heal} ? sprintf('%.1f', $s->{heal_s} / $s->{n}) : '-',
         $_->{heal} ? sprintf('%.1f', $s->{heal_max}) : '-',
         $x ? sprintf('%.1f/%.1f', $x->{sum} / $x->{n}, $x->{max}) : '-',
         $_->{what}]
    } @TABLE;
    push @rows, map { ["died: $_", $self->{restarts}{$_}, '', '', '', '', '',
                       'found not running, restarted by the supervisor'] }
                sort keys %{ $self->{restarts} };
    return (['fault', 'count', 'failed', 'held s', 'heal s', 'heal max s',
             'first 202 s', 'what'], @rows);
}

1;
