package CommerceTest;

# Test harness for ngx_http_commerce_module, modelled on nginx-tests'
# lib/Test/Nginx.pm: each test file gets its own temp dir, free loopback
# ports, its own redis-server and its own nginx built from a config written
# in the test.  Perl core modules only.
#
#   my $t = CommerceTest->new;
#   $t->start_redis;
#   $t->write_nginx_conf(<<'EOF');
#   server {
#       listen 127.0.0.1:%%PORT_HTTP%%;
#       location ~ ^/v1/catalog/(?<id>[^/]+)$ { commerce_catalog_item $id; }
#   }
#   EOF
#   $t->start_nginx;
#   my $r = $t->http(GET => '/v1/catalog/x');   # {status, headers, body}
#   $t->done;                                     # log check + done_testing
#
# Environment: COMMERCE_BUILD (build dir, default <repo>/build),
# COMMERCE_LD_PRELOAD (preloaded into nginx, for ASan builds), TEST_KEEP=1
# (keep the temp dir), COMMERCE_NGINX (nginx binary, default /usr/sbin/nginx).

use strict;
use warnings;

use Cwd qw(abs_path);
use Errno qw(EAGAIN EINTR EWOULDBLOCK);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Socket qw(SOL_SOCKET SO_LINGER);
use Test::More;
use Time::HiRes qw(sleep time);

our $NGINX = $ENV{COMMERCE_NGINX} // '/usr/sbin/nginx';
our $REPO = abs_path(dirname(__FILE__) . '/../..');

my @instances;
my %used_ports;


sub new {
    my ($class, %opts) = @_;

    my $build = $ENV{COMMERCE_BUILD} // "$REPO/build";
    my $so = (abs_path($build) // $build) . '/ngx_http_commerce_module.so';

    if (!$opts{no_module} && !-f $so) {
        BAIL_OUT("nginx module not built: $so is missing "
                 . "(run 'make module' or set COMMERCE_BUILD)");
    }

    my $dir = tempdir('commerce-test-XXXXXXXX', TMPDIR => 1,
                      CLEANUP => !$ENV{TEST_KEEP});
    chmod 0755, $dir;
    diag("test dir kept: $dir") if $ENV{TEST_KEEP};

    my $self = bless {
        dir => $dir,
        so => $so,
        owner => $$,
        ports => {},
        confs => {},
        running => {},       # conf name -> 1 while its nginx runs
        started_logs => {},  # error logs of every nginx started
        redis_pid => undef,
    }, $class;

    push @instances, $self;

    return $self;
}


sub dir { $_[0]{dir} }
sub module_path { $_[0]{so} }


# The lowest port the kernel hands out to outgoing connections: ports
# for listeners are taken below it, so that no connection made meanwhile
# (by the test, nginx, redis or librdkafka) can already hold the port a
# server is about to bind.
sub _ephemeral_low {
    open(my $fh, '<', '/proc/sys/net/ipv4/ip_local_port_range')
        or return 32768;
    my ($low) = split ' ', scalar <$fh>;
    close $fh;
    return $low && $low > 12000 ? $low : 32768;
}


# A free loopback TCP port, the same one for the same name within a test.
sub port {
    my ($self, $name) = @_;

    $name //= 'HTTP';

    return $self->{ports}{$name} if $self->{ports}{$name};

    my $low = _ephemeral_low();

    for (1 .. 200) {
        my $p = 10000 + int(rand($low - 10000));
        next if $used_ports{$p};
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                      LocalPort => $p, Proto => 'tcp',
                                      Listen => 1, ReuseAddr => 1)
            or next;
        close $s;
        $used_ports{$p}++;
        return $self->{ports}{$name} = $p;
    }

    die "no free port found";
}


# ---------------------------------------------------------------- redis ---

sub redis_port { $_[0]->port('REDIS') }


sub start_redis {
    my ($self, %opts) = @_;

    my $port = $self->redis_port;
    my $dir = $self->{dir};

    my @args = ('redis-server', '--port', $port, '--bind', '127.0.0.1',
                '--save', '', '--appendonly', 'no', '--daemonize', 'no',
                '--dir', $dir, '--logfile', "$dir/redis.log",
                '--protected-mode', 'no', @{ $opts{args} // [] });

    my $pid = fork // die "fork: $!";

    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/redis.stdout";
        open STDERR, '>&', \*STDOUT;
        exec @args or POSIX::_exit(127);
    }

    $self->{redis_pid} = $pid;

    for (1 .. 200) {
        my ($v) = eval { $self->redis_cmd('PING') };
        return $pid if defined $v && $v eq 'PONG';

        if (waitpid($pid, WNOHANG) == $pid) {
            $self->{redis_pid} = undef;
            die "redis-server exited at startup: " . _slurp("$dir/redis.log");
        }

        sleep 0.05;
    }

    die "redis-server did not answer PING on port $port";
}


# SIGTERM (or the signal given, e.g. 'KILL') and reap.
sub stop_redis {
    my ($self, $sig) = @_;

    my $pid = $self->{redis_pid} or return;

    $sig //= 'TERM';

    # a stopped redis must run to handle SIGTERM; SIGKILL needs no help
    # (and a resumed redis would answer pending commands before dying)
    kill 'CONT', $pid if $sig ne 'KILL';
    kill $sig, $pid;

    for (1 .. 200) {
        last if waitpid($pid, WNOHANG) != 0;
        sleep 0.05;
    }

    if (kill 0, $pid) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }

    $self->{redis_pid} = undef;
}


sub kill_redis { $_[0]->stop_redis('KILL') }


sub restart_redis {
    my ($self, %opts) = @_;

    $self->stop_redis;
    return $self->start_redis(%opts);
}


sub pause_redis { kill 'STOP', $_[0]{redis_pid} }
sub resume_redis { kill 'CONT', $_[0]{redis_pid} }


sub _resp_encode {
    my @args = @_;
    my $s = '*' . scalar(@args) . "\r\n";
    for my $a (@args) {
        $s .= '$' . length($a) . "\r\n$a\r\n";
    }
    return $s;
}


sub _resp_read {
    my ($sock) = @_;

    my $line = <$sock>;
    die "redis: connection closed\n" unless defined $line;
    $line =~ s/\r\n\z// or die "redis: bad line '$line'\n";

    my ($type, $rest) = (substr($line, 0, 1), substr($line, 1));

    return $rest if $type eq '+' || $type eq ':';
    return CommerceTest::RedisError->new($rest) if $type eq '-';

    if ($type eq '$') {
        return undef if $rest < 0;
        my $buf = '';
        while (length($buf) < $rest + 2) {
            my $n = read($sock, $buf, $rest + 2 - length($buf), length($buf));
            die "redis: short read\n" unless $n;
        }
        return substr($buf, 0, $rest);
    }

    if ($type eq '*') {
        return undef if $rest < 0;
        return [map { _resp_read($sock) } 1 .. $rest];
    }

    die "redis: unknown reply type '$type'\n";
}


sub _redis_connect {
    my ($self) = @_;

    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $self->redis_port,
                                  Proto => 'tcp', Timeout => 5)
        or die "redis connect: $!\n";
    binmode $s;

    return $s;
}


# Runs several commands on one connection; returns their replies (an error
# reply is a CommerceTest::RedisError object, stringifying to its text).
sub redis_pipeline {
    my ($self, @cmds) = @_;

    my @replies;

    local $SIG{ALRM} = sub { die "redis: no reply in 30s\n" };
    alarm 30;

    eval {
        my $s = $self->_redis_connect;
        # write in slices: the replies are read after all is sent
        my $out = join '', map { _resp_encode(@$_) } @cmds;
        print {$s} $out or die "redis write: $!\n";
        push @replies, _resp_read($s) for @cmds;
        close $s;
        1;
    } or do {
        alarm 0;
        die $@;
    };

    alarm 0;

    return @replies;
}


# One command; dies on an error reply.
sub redis_cmd {
    my ($self, @args) = @_;

    my ($r) = $self->redis_pipeline([@args]);
    die "redis $args[0]: $$r\n" if ref $r eq 'CommerceTest::RedisError';

    return $r;
}


# ---------------------------------------------------------------- nginx ---

sub _conf_path {
    my ($self, $name) = @_;
    return "$self->{dir}/$name.conf";
}


sub error_log_path {
    my ($self, $name) = @_;
    $name //= 'nginx';
    return "$self->{dir}/" . ($name eq 'nginx' ? 'error.log'
                                              : "$name.error.log");
}


sub _pid_path {
    my ($self, $name) = @_;
    return "$self->{dir}/$name.pid";
}


# Substitutes %%PORT_NAME%%, %%REDIS_PORT%%, %%TESTDIR%%.
sub expand {
    my ($self, $text) = @_;

    $text =~ s/%%REDIS_PORT%%/$self->redis_port/ge;
    $text =~ s/%%PORT_(\w+)%%/$self->port($1)/ge;
    $text =~ s/%%TESTDIR%%/$self->{dir}/g;

    return $text;
}


# Writes <dir>/<name>.conf around the text of the http{} block.
# Options: name (default 'nginx'), workers (1), log_level ('info'),
# main (extra main-context text), no_load_module.
sub write_nginx_conf {
    my ($self, $http, %o) = @_;

    my $name = $o{name} // 'nginx';
    my $workers = $o{workers} // 1;
    my $level = $o{log_level} // 'info';
    my $d = $self->{dir};
    my $log = $self->error_log_path($name);
    my $pid = $self->_pid_path($name);
    my $load = $o{no_load_module} ? '' : "load_module $self->{so};";
    my $user = $> == 0 ? 'user root;' : '';
    my $main = $o{main} // '';

    my $conf = <<"EOF";
$load
$user
worker_processes $workers;
daemon on;
master_process on;
pid $pid;
error_log $log $level;
$main

events {
    worker_connections 1024;
}

http {
    access_log off;
    default_type application/octet-stream;

    client_body_temp_path $d/client_body_temp;
    proxy_temp_path $d/proxy_temp;
    fastcgi_temp_path $d/fastcgi_temp;
    uwsgi_temp_path $d/uwsgi_temp;
    scgi_temp_path $d/scgi_temp;

$http
}
EOF

    $conf = $self->expand($conf);

    my $path = $self->_conf_path($name);
    open my $fh, '>', $path or die "$path: $!";
    print {$fh} $conf;
    close $fh;

    $self->{confs}{$name} = { workers => $workers };

    return $path;
}


sub _nginx_env {
    my %env;
    $env{LD_PRELOAD} = $ENV{COMMERCE_LD_PRELOAD}
        if defined $ENV{COMMERCE_LD_PRELOAD} && $ENV{COMMERCE_LD_PRELOAD} ne '';
    return %env;
}


# Runs a command (a list, no shell) with the environment variables of the
# hash added; returns (exit code, stdout+stderr).
sub run {
    my ($self, $env, @cmd) = @_;

    local @ENV{keys %$env} = values %$env;

    my $pid = open(my $fh, '-|') // die "fork: $!";

    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }

    local $/;
    my $out = <$fh> // '';
    close $fh;

    return ($? >> 8, $out);
}


# Runs nginx with the arguments; returns (exit code, stdout+stderr).
sub _run_nginx {
    my ($self, @args) = @_;

    return $self->run({ _nginx_env() }, $NGINX, @args);
}


# nginx -t on a written config: (1, output) when valid, (0, output) if not.
sub nginx_test_ok {
    my ($self, $name) = @_;

    $name //= 'nginx';

    my ($rc, $out) = $self->_run_nginx('-t', '-q', '-p', "$self->{dir}/",
        '-c', $self->_conf_path($name),
        '-e', "$self->{dir}/$name.t.log");

    return wantarray ? ($rc == 0 ? 1 : 0, $out) : $rc == 0;
}


sub master_pid {
    my ($self, $name) = @_;

    $name //= 'nginx';

    open my $fh, '<', $self->_pid_path($name) or return undef;
    my $pid = <$fh>;
    close $fh;

    return undef unless defined $pid && $pid =~ /^(\d+)/;
    return $1;
}


sub _alive {
    my ($pid) = @_;

    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my $stat = <$fh> // '';
    close $fh;

    # "pid (comm) S ...": a zombie or dead process has exited
    return $stat =~ /\)\s+([A-Za-z])/ && $1 ne 'Z' && $1 ne 'X';
}


# The pids of the worker processes of a master.
sub worker_pids {
    my ($self, $name) = @_;

    my $master = $self->master_pid($name) or return ();
    my @pids;

    opendir my $dh, '/proc' or return ();

    for my $pid (grep { /^\d+$/ } readdir $dh) {
        open my $fh, '<', "/proc/$pid/stat" or next;
        my $stat = <$fh> // '';
        close $fh;

        next unless $stat =~ /\)\s+([A-Za-z])\s+(\d+)/;
        next if $1 eq 'Z' || $2 != $master;

        open my $ch, '<', "/proc/$pid/cmdline" or next;
        my $cmd = <$ch> // '';
        close $ch;

        push @pids, $pid if $cmd =~ /worker process/;
    }

    closedir $dh;

    @pids = sort { $a <=> $b } @pids;

    return @pids;
}


sub _port_open {
    my ($port) = @_;

    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 1);
    return 0 unless $s;
    close $s;
    return 1;
}


sub start_nginx {
    my ($self, %o) = @_;

    my $name = $o{name} // 'nginx';
    my $conf = $self->_conf_path($name);

    die "no config written for '$name'" unless -f $conf;

    unlink $self->_pid_path($name);

    my ($rc, $out) = $self->_run_nginx('-p', "$self->{dir}/", '-c', $conf,
                                       '-e', $self->error_log_path($name));

    $self->{started_logs}{$self->error_log_path($name)} = 1;

    if ($rc != 0) {
        die "nginx failed to start ($rc): $out\n"
            . _tail($self->error_log_path($name));
    }

    my $workers = $self->{confs}{$name}{workers} // 1;
    my $ready = 0;

    # the daemonized master is stopped by cleanup even if not ready
    $self->{running}{$name} = 1;

    for (1 .. 200) {
        if (my $m = $self->master_pid($name)) {
            my @w = $self->worker_pids($name);
            if (_alive($m) && @w >= $workers) {
                $ready = 1;
                last;
            }
        }
        sleep 0.05;
    }

    die "nginx '$name' did not start: " . _tail($self->error_log_path($name))
        unless $ready;

    my $port = $o{port} // $self->{ports}{HTTP};

    if ($port) {
        for (1 .. 100) {
            last if _port_open($port);
            sleep 0.05;
        }
    }

    return $self->master_pid($name);
}


# SIGQUIT (graceful), wait for the master and workers to exit, SIGKILL
# after a bound.
sub stop_nginx {
    my ($self, %o) = @_;

    my $name = $o{name} // 'nginx';
    my $master = $self->master_pid($name);

    delete $self->{running}{$name};

    return 1 unless $master && _alive($master);

    my @workers = $self->worker_pids($name);

    kill $o{signal} // 'QUIT', $master;

    my $deadline = time + ($o{timeout} // 15);

    while (time < $deadline) {
        last unless _alive($master) || grep { _alive($_) } @workers;
        sleep 0.05;
    }

    my @left = grep { _alive($_) } $master, @workers;

    if (@left) {
        kill 'KILL', @left;
        diag("nginx '$name' did not exit in time, killed: @left");
        return 0;
    }

    return 1;
}


# nginx -s reload, then wait until every old worker is gone and the new
# workers are up.  Returns true when that happened in time.
sub reload_nginx {
    my ($self, %o) = @_;

    my $name = $o{name} // 'nginx';
    my @old = $self->worker_pids($name);
    my $workers = $self->{confs}{$name}{workers} // 1;

    my ($rc, $out) = $self->_run_nginx('-s', 'reload', '-p', "$self->{dir}/",
        '-c', $self->_conf_path($name),
        '-e', $self->error_log_path($name));

    if ($rc != 0) {
        diag("nginx -s reload failed ($rc): $out");
        return 0;
    }

    my %old = map { $_ => 1 } @old;
    my $deadline = time + ($o{timeout} // 20);

    while (time < $deadline) {
        my @now = $self->worker_pids($name);
        my @fresh = grep { !$old{$_} } @now;

        if (!grep({ _alive($_) } @old) && @fresh >= $workers) {
            return 1;
        }

        sleep 0.05;
    }

    diag("reload: old workers still alive: "
         . join(' ', grep { _alive($_) } @old));

    return 0;
}


# Lines at [alert], [crit] or [emerg] in an error log, or of a sanitizer.
sub bad_log_lines {
    my ($self, $path) = @_;

    $path //= $self->error_log_path;

    open my $fh, '<', $path or return ();
    # and sanitizer reports, when a worker's stderr (the log) got them
    my @bad = grep { /\[(?:alert|crit|emerg)\]|runtime\ error:
                      |ERROR:\ (?:Address|Undefined)Sanitizer/x } <$fh>;
    close $fh;

    return @bad;
}


# Lines of the error log matching a regex.
sub log_grep {
    my ($self, $re, $name) = @_;

    open my $fh, '<', $self->error_log_path($name) or return ();
    my @l = grep { $_ =~ $re } <$fh>;
    close $fh;

    return @l;
}


# Stops everything and fails if an error log has alert/crit/emerg lines;
# then done_testing.
sub done {
    my ($self) = @_;

    $self->stop_nginx(name => $_) for keys %{ $self->{running} };
    $self->stop_redis;

    for my $log (sort keys %{ $self->{started_logs} }) {
        my @bad = $self->bad_log_lines($log);
        ok(!@bad, "no alert/crit/emerg in " . (split m{/}, $log)[-1])
            or diag(join '', @bad);
    }

    $self->{done} = 1;

    done_testing();
}


sub cleanup {
    my ($self) = @_;

    return if $$ != $self->{owner};

    $self->stop_nginx(name => $_) for keys %{ $self->{running} };
    $self->stop_redis;
}


END {
    local $?;
    $_->cleanup for @instances;
}


# ------------------------------------------------------------------ http ---

# Parses one response off the front of $$buf.  Returns the response hash
# and removes its bytes, or undef when the buffer holds no full response
# yet.  With $eof the body may be delimited by the connection close.
sub parse_response {
    my ($buf, $method, $eof) = @_;

    my $end = index($$buf, "\r\n\r\n");
    return undef if $end < 0;

    my $head = substr($$buf, 0, $end);
    my @lines = split /\r\n/, $head;
    my $status_line = shift @lines;

    my ($proto, $status) = $status_line =~ m{^(HTTP/\d\.\d)\s+(\d{3})}
        or die "bad status line: $status_line\n";

    my %h;
    my @raw_headers;

    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
        push @raw_headers, [$k, $v];
        $k = lc $k;
        $h{$k} = exists $h{$k} ? "$h{$k}, $v" : $v;
    }

    my $pos = $end + 4;
    my $body;
    my $no_body = $method eq 'HEAD' || $status == 304 || $status == 204
                  || $status < 200;

    if ($no_body) {
        $body = '';

    } elsif (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        $body = '';
        my $p = $pos;
        while (1) {
            my $nl = index($$buf, "\r\n", $p);
            return undef if $nl < 0;
            my ($size) = substr($$buf, $p, $nl - $p) =~ /^([0-9a-fA-F]+)/;
            die "bad chunk size\n" unless defined $size;
            $size = hex $size;
            if ($size == 0) {
                my $tend = index($$buf, "\r\n\r\n", $nl);
                # no trailers: "0\r\n\r\n"
                $tend = $nl if substr($$buf, $nl, 4) eq "\r\n\r\n";
                return undef if $tend < 0;
                $pos = $tend + 4;
                last;
            }
            return undef if length($$buf) < $nl + 2 + $size + 2;
            $body .= substr($$buf, $nl + 2, $size);
            $p = $nl + 2 + $size + 2;
        }
        $h{'x-test-chunked'} = 1;

    } elsif (defined $h{'content-length'}) {
        my $len = $h{'content-length'};
        return undef if length($$buf) < $pos + $len;
        $body = substr($$buf, $pos, $len);
        $pos += $len;

    } else {
        return undef unless $eof;
        $body = substr($$buf, $pos);
        $pos = length $$buf;
    }

    my $res = {
        status => $status + 0,
        proto => $proto,
        headers => \%h,
        header_list => \@raw_headers,
        body => $body,
        head => $head,
    };

    substr($$buf, 0, $pos) = '';

    return $res;
}


sub _request_text {
    my ($method, $path, $headers, $body, $keepalive) = @_;

    my $t = "$method $path HTTP/1.1\r\nHost: localhost\r\n";
    $t .= "Connection: close\r\n" unless $keepalive;

    for my $k (sort keys %$headers) {
        my $v = $headers->{$k};
        $t .= "$k: $_\r\n" for ref $v ? @$v : ($v);
    }

    $t .= 'Content-Length: ' . length($body) . "\r\n" if defined $body;
    $t .= "\r\n";
    $t .= $body if defined $body;

    return $t;
}


# Sends raw bytes on a new connection and reads until the server closes
# (or the timeout).  Returns (bytes, error).
sub http_raw {
    my ($self, $bytes, %o) = @_;

    my $timeout = $o{timeout} // 10;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $o{port} // $self->port('HTTP'),
                                  Proto => 'tcp', Timeout => $timeout)
        or return ('', "connect: $!");
    binmode $s;

    my $off = 0;
    while ($off < length $bytes) {
        my $n = syswrite($s, $bytes, length($bytes) - $off, $off);
        return ('', "write: $!") unless defined $n;
        $off += $n;
    }

    my $sel = IO::Select->new($s);
    my $data = '';
    my $deadline = time + $timeout;

    while (1) {
        my $left = $deadline - time;
        return ($data, 'timeout') if $left <= 0;
        next unless $sel->can_read($left);
        my $n = sysread($s, $data, 65536, length $data);
        return ($data, "read: $!") unless defined $n;
        last if $n == 0;
    }

    close $s;

    return ($data, undef);
}


# One request on a new connection (Connection: close).  Headers are given
# as name => value (an array ref repeats the header); options start with
# '-': -port, -body, -timeout.  Returns a hash: status (0 on a transport
# error), headers (lower-cased names), body, error, elapsed.
sub http {
    my ($self, $method, $path, %h) = @_;

    my %o;
    for my $k (grep { /^-/ } keys %h) {
        $o{substr $k, 1} = delete $h{$k};
    }

    my $req = _request_text($method, $path, \%h, $o{body}, 0);
    my $t0 = time;
    my ($data, $err) = $self->http_raw($req, %o);
    my $elapsed = time - $t0;

    my $res = eval { parse_response(\$data, $method, 1) };

    if (!$res) {
        return { status => 0, headers => {}, body => '',
                 error => $err // ($@ || 'incomplete response'),
                 raw => $data, elapsed => $elapsed };
    }

    $res->{error} = $err;
    $res->{elapsed} = $elapsed;
    $res->{trailing} = $data;   # bytes after the response (must be none)

    return $res;
}


sub http_get { my ($self, $path, %h) = @_; $self->http(GET => $path, %h) }


# A persistent client connection (keepalive, pipelining).
sub conn {
    my ($self, %o) = @_;
    return CommerceTest::Conn->new(port => $o{port} // $self->port('HTTP'),
                                   timeout => $o{timeout} // 10);
}


# Runs code in a child process that exits with POSIX::_exit (no END
# blocks, no Test::More output).  Returns the pid.
sub fork_child {
    my ($self, $code) = @_;

    my $pid = fork // die "fork: $!";

    if ($pid == 0) {
        my $rc = eval { $code->(); 1 } ? 0 : 1;
        print STDERR "child failed: $@" if $rc;
        POSIX::_exit($rc);
    }

    return $pid;
}


sub _slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return '';
    local $/;
    my $d = <$fh>;
    close $fh;
    return $d // '';
}


sub slurp { shift; _slurp(@_) }


sub _tail {
    my ($path) = @_;
    my @l = split /\n/, _slurp($path);
    splice @l, 0, @l - 20 if @l > 20;
    return join "\n", @l;
}


# Percent-encodes every byte outside the unreserved set.
sub uri_escape {
    my ($s) = @_;
    $s =~ s/([^A-Za-z0-9\-._~])/sprintf '%%%02X', ord $1/ge;
    return $s;
}


package CommerceTest::RedisError;

use overload '""' => sub { ${ $_[0] } }, fallback => 1;

sub new { my ($c, $m) = @_; bless \$m, $c }


package CommerceTest::Conn;

use Errno qw(EINTR);
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time);

sub new {
    my ($class, %o) = @_;

    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $o{port}, Proto => 'tcp',
                                  Timeout => $o{timeout})
        or return undef;
    binmode $s;

    return bless { sock => $s, buf => '', timeout => $o{timeout},
                   eof => 0, pending => [], served => 0 }, $class;
}


sub sock { $_[0]{sock} }
sub served { $_[0]{served} }


# Queues a keepalive request (sent at once).  Returns false on a write error.
sub send_request {
    my ($self, $method, $path, %h) = @_;

    my $body = delete $h{-body};
    my $req = CommerceTest::_request_text($method, $path, \%h, $body, 1);

    push @{ $self->{pending} }, $method;

    return $self->send_raw($req);
}


sub send_raw {
    my ($self, $bytes) = @_;

    local $SIG{PIPE} = 'IGNORE';
    my $off = 0;

    while ($off < length $bytes) {
        my $n = syswrite($self->{sock}, $bytes, length($bytes) - $off, $off);
        if (!defined $n) {
            next if $! == EINTR;
            $self->{error} = "write: $!";
            return 0;
        }
        $off += $n;
    }

    return 1;
}


# Reads whatever is available (non-blocking use with select); returns the
# number of bytes read, 0 on EOF, undef on error.
sub fill {
    my ($self) = @_;

    my $n = sysread($self->{sock}, $self->{buf}, 262144, length $self->{buf});

    if (!defined $n) {
        $self->{error} = "read: $!";
        return undef;
    }

    $self->{eof} = 1 if $n == 0;

    return $n;
}


# Takes a complete response off the buffer if there is one.
sub take {
    my ($self) = @_;

    my $method = $self->{pending}[0] // 'GET';
    my $res = CommerceTest::parse_response(\$self->{buf}, $method,
                                           $self->{eof});
    return undef unless $res;

    shift @{ $self->{pending} };
    $self->{served}++;

    return $res;
}


# Blocks (up to the timeout) for the next response.  Returns the response
# hash or a hash with status 0 and error.
sub read_response {
    my ($self) = @_;

    my $sel = IO::Select->new($self->{sock});
    my $deadline = time + $self->{timeout};

    while (1) {
        my $res = eval { $self->take };
        return { status => 0, error => $@, headers => {}, body => '' } if $@;
        return $res if $res;

        if ($self->{eof}) {
            return { status => 0, headers => {}, body => '',
                     error => length $self->{buf} ? 'truncated response'
                                                  : 'connection closed',
                     partial => length $self->{buf} };
        }

        my $left = $deadline - time;
        return { status => 0, error => 'timeout', headers => {}, body => '' }
            if $left <= 0;

        next unless $sel->can_read($left);

        my $n = $self->fill;
        return { status => 0, error => $self->{error}, headers => {},
                 body => '', partial => length $self->{buf} }
            unless defined $n;
    }
}


sub request {
    my ($self, $method, $path, %h) = @_;

    $self->send_request($method, $path, %h)
        or return { status => 0, error => $self->{error}, headers => {},
                    body => '' };

    return $self->read_response;
}


# Closes with an RST (SO_LINGER 0) instead of a FIN.
sub abort {
    my ($self) = @_;
    setsockopt($self->{sock}, Socket::SOL_SOCKET(), Socket::SO_LINGER(),
               pack('ii', 1, 0));
    close $self->{sock};
}


sub close { close $_[0]{sock} }


1;
