#!/usr/bin/perl

# The Debian packages of the built tree (scripts/deb.sh, what `make deb`
# runs): both build, lintian finds no error, the module depends on the ABI
# of the nginx it was built for and on the libraries it links. Unpacked
# into a temporary root (nothing is installed on the machine): the module's
# maintainer scripts enable it the way Debian's libnginx-mod-* do; the stock
# nginx loads the packaged module through the packaged modules-available
# snippet and serves a catalog read through the packaged locations snippet;
# every worker is packaged, runs, has its man page and reads its packaged
# configuration; the migrations are sql/'s; systemd-analyze accepts the
# units; the workers' postinst creates the system user and closes the
# configuration to others.

use strict;
use warnings;

use Cwd qw(realpath);
use File::Path qw(make_path);
use Test::More;
use lib 't/lib';
use CommerceTest;

my $repo = $CommerceTest::REPO;
my $build = $ENV{COMMERCE_BUILD} // "$repo/build";
my $so_name = 'ngx_http_commerce_module.so';

for my $tool (qw(dpkg-deb dpkg-gencontrol dpkg-shlibdeps help2man lintian
                 readelf)) {
    plan skip_all => "$tool not installed (make deps)"
        unless system("command -v $tool >/dev/null 2>&1") == 0;
}
plan skip_all => 'a sanitizer build is not packaged'
    if `readelf -d '$build/$so_name' 2>/dev/null` =~ /NEEDED.*lib[at]san/;

my $t = CommerceTest->new;
my $dir = $t->dir;
my $root = "$dir/root";
my $mod = 'libnginx-mod-http-commerce';
my $wrk = 'commerce-workers';


sub run { $t->run(@_) }


sub field {
    my ($deb, $name) = @_;
    my ($rc, $v) = run({}, 'dpkg-deb', '-f', $deb, $name);
    chomp $v;
    return $v;
}


# The packages that hold the libraries an ELF file links directly.
sub needed_packages {
    my ($elf) = @_;

    my %lib = `ldd '$elf'` =~ /^\s+(\S+) => (\S+)/mg;
    my %pkg;

    for my $so (`readelf -dW '$elf'` =~ /\(NEEDED\).*\[(.+?)\]/g) {
        my $path = $lib{$so} // next;
        for my $p ($path, "/usr$path", $path =~ s{^/usr/}{/}r) {
            if (`dpkg -S '$p' 2>/dev/null` =~ /^([^:\s]+)[^\n]*: \Q$p\E$/m) {
                $pkg{$1} = $so;
                last;
            }
        }
    }

    return \%pkg;
}


sub depends_on {
    my ($deb, $pkg) = @_;
    return grep { /^\Q$pkg\E(?: |$)/ } split /,\s*|\s*\|\s*/,
        field($deb, 'Depends');
}


# ---- build ------------------------------------------------------------------

my ($rc, $out) = run({ COMMERCE_BUILD => $build,
                       COMMERCE_DEB_DIR => "$dir/deb" },
                     "$repo/scripts/deb.sh");
is($rc, 0, 'scripts/deb.sh builds the packages') or diag($out);

my %deb;
for my $p ($mod, $wrk) {
    my @f = glob("$dir/deb/${p}_*.deb");
    is(scalar @f, 1, "one $p package") and $deb{$p} = $f[0];
}

if (keys %deb != 2) {
    done_testing();
    exit;
}

chomp(my $arch = `dpkg --print-architecture`);
chomp(my $base = $t->slurp("$repo/VERSION"));

for my $p ($mod, $wrk) {
    is(field($deb{$p}, 'Package'), $p, "$p: Package");
    is(field($deb{$p}, 'Architecture'), $arch, "$p: Architecture $arch");
    like(field($deb{$p}, 'Version'),
         qr/^\Q$base\E(?:~git\d+\.[0-9a-f]{7,}(?:\+dirty)?)?$/,
         "$p: Version from VERSION (and git)");
}

is(field($deb{$mod}, 'Version'), field($deb{$wrk}, 'Version'),
   'both packages have the same version');


# ---- lintian ----------------------------------------------------------------

($rc, $out) = run({}, 'lintian', '-I', '--fail-on', 'error',
                  @deb{$mod, $wrk});
my @lines = grep { /^[EWI]: / } split /\n/, $out;

ok(!grep({ /^E: / } @lines), 'lintian: no error')
    or diag(join "\n", grep { /^E: / } @lines);
is($rc, 0, 'lintian exits 0') or diag($out);
diag("lintian: $_") for grep { /^W: / } @lines;
note("lintian: $_") for grep { /^I: / } @lines;


# ---- dependencies -----------------------------------------------------------

my ($abi) = $t->slurp('/usr/share/nginx/src/debian/libnginx-mod.abisubstvars')
    =~ /^nginx:abi=(\S+)$/m;
my $provides = `dpkg-query -W -f='\${Provides}' nginx`;

ok($abi, "nginx-dev names the ABI it builds modules for: $abi");
like($provides, qr/(?:^|,\s*)\Q$abi\E(?:,|$)/,
     "the installed nginx provides $abi");
ok(depends_on($deb{$mod}, $abi), "the module depends on $abi");

my $pkgs = needed_packages("$build/$so_name");
ok(keys %$pkgs >= 4, 'the module links libraries of '
   . join(', ', sort keys %$pkgs));
for my $p (sort keys %$pkgs) {
    ok(depends_on($deb{$mod}, $p), "the module depends on $p ($pkgs->{$p})");
}

my @workers = map { m{/workers/([^/]+)/main\.c$} ? "commerce-$1" : () }
    glob("$repo/workers/*/main.c");

$pkgs = {};
%$pkgs = (%$pkgs, %{ needed_packages("$build/bin/$_") }) for @workers;
for my $p (sort keys %$pkgs) {
    ok(depends_on($deb{$wrk}, $p), "the workers depend on $p ($pkgs->{$p})");
}
ok(depends_on($deb{$wrk}, 'systemd-sysusers'),
   'the workers depend on a systemd-sysusers');


# ---- unpacked ---------------------------------------------------------------

my %ctl;
make_path("$dir/control");
for my $p ($mod, $wrk) {
    $ctl{$p} = "$dir/control/$p";
    is((run({}, 'dpkg-deb', '-x', $deb{$p}, $root))[0], 0, "$p unpacks");
    is((run({}, 'dpkg-deb', '-e', $deb{$p}, $ctl{$p}))[0], 0,
       "$p: control files");
    ($rc, $out) = run({}, 'sh', '-c', "cd '$root' && md5sum --quiet -c "
                      . "'$ctl{$p}/md5sums'");
    is($rc, 0, "$p: md5sums match the files") or diag($out);
}

my $avail = '/usr/share/nginx/modules-available/mod-http-commerce.conf';

ok(-f "$root/usr/lib/nginx/modules/$so_name",
   "the module is in nginx's modules directory");
is($t->slurp("$root$avail"), "load_module modules/$so_name;\n",
   "modules-available/ holds the load_module line");
is($t->slurp("$ctl{$mod}/conffiles"),
   "/etc/nginx/snippets/commerce-carts.conf\n"
   . "/etc/nginx/snippets/commerce-locations.conf\n"
   . "/etc/nginx/snippets/commerce-orders.conf\n",
   'the locations snippets are conffiles');
for my $f ('commerce-locations.conf', 'commerce-carts.conf',
           'commerce-orders.conf') {
    is($t->slurp("$root/etc/nginx/snippets/$f"), $t->slurp("$repo/conf/$f"),
       "the snippet $f is conf/$f");
}


# ---- the module's maintainer scripts ----------------------------------------

# As dpkg runs them for another root (DPKG_ROOT), with a dpkg-trigger that
# records the triggers instead of activating them.
my $enabled = "$root/etc/nginx/modules-enabled";
my $link = "$enabled/50-mod-http-commerce.conf";
my $triggers = "$dir/triggers";

make_path($enabled, "$dir/stub");
open my $sfh, '>', "$dir/stub/dpkg-trigger" or die $!;
print {$sfh} "#!/bin/sh\necho \"\$*\" >>'$triggers'\n";
close $sfh;
chmod 0755, "$dir/stub/dpkg-trigger";

my %dpkg_env = (DPKG_ROOT => $root, PATH => "$dir/stub:$ENV{PATH}");

sub script {
    my ($pkg, $name, @args) = @_;
    my ($rc, $out) = run(\%dpkg_env, "$ctl{$pkg}/$name", @args);
    is($rc, 0, "$pkg.$name @args") or diag($out);
}


sub triggered {
    my @t = $t->slurp($triggers) =~ /^--no-await nginx-reload$/mg;
    return scalar @t;
}


script($mod, 'postinst', 'configure', '');
is(readlink($link), $avail, 'install: a modules-enabled/ link to the snippet');
is(triggered(), 1, 'install: nginx-reload triggered');

script($mod, 'prerm', 'remove');
script($mod, 'postrm', 'remove');
ok(!-l $link && -l "$link.removed", 'remove: the link becomes .removed');
is(triggered(), 2, 'remove: nginx-reload triggered');

script($mod, 'postinst', 'configure', '0.0.1');
ok(readlink($link) eq $avail && !-l "$link.removed",
   'installed again (config-files left): enabled again');

unlink $link;
script($mod, 'postinst', 'configure', '0.0.1');
ok(!-l $link, 'upgrade: a link the administrator removed stays removed');

symlink $avail, $link;
script($mod, 'prerm', 'remove');
script($mod, 'postrm', 'remove');
script($mod, 'postrm', 'purge');
ok(!-l $link && !-l "$link.removed", 'purge: no link left');

script($mod, 'postinst', 'configure', '');
is(readlink($link), $avail, 'install after purge: enabled');


# ---- nginx with the packaged module -----------------------------------------

# Debian's nginx resolves the snippet's relative "modules/" against its
# prefix, /usr/share/nginx, whose modules/ links to the modules path. The
# test's nginx runs with its temp dir as prefix: the same link is made
# there, to the unpacked modules path.
my $v = `/usr/sbin/nginx -V 2>&1`;
like($v, qr{--prefix=/usr/share/nginx\s}, 'nginx: prefix /usr/share/nginx');
like($v, qr{--modules-path=/usr/lib/nginx/modules\s},
     'nginx: modules path /usr/lib/nginx/modules');
is(realpath('/usr/share/nginx/modules'), '/usr/lib/nginx/modules',
   'Debian links <prefix>/modules to the modules path');
symlink "$root/usr/lib/nginx/modules", "$dir/modules" or die $!;

$t->write_nginx_conf(<<"EOF", no_load_module => 1,
commerce_redis_server 127.0.0.1:%%REDIS_PORT%%;

server {
    listen 127.0.0.1:%%PORT_HTTP%%;
    include $root/etc/nginx/snippets/commerce-locations.conf;
}
EOF
    main => "include $root" . readlink($link) . ';');

my ($ok, $t_out) = $t->nginx_test_ok;
ok($ok, 'nginx -t with the enabled snippet and the locations snippet')
    or diag($t_out);

$t->start_redis;
my $doc = '{"id":"deb-1","title":"packaged"}';
$t->redis_cmd('SET', 'cat:item:deb-1', $doc);
my $master = $t->start_nginx;

my $r = $t->http_get('/v1/catalog/deb-1');
is($r->{status}, 200, 'GET /v1/catalog/deb-1: 200') or diag($r->{body});
is($r->{body}, $doc, '... the document from Redis');
is($r->{headers}{'cache-control'},
   'public, max-age=5, stale-while-revalidate=30',
   '... with the snippet\'s Cache-Control');
like($t->slurp("/proc/$master/maps"),
     qr{\Q$root/usr/lib/nginx/modules/$so_name\E},
     'nginx runs the unpacked module');


# ---- the workers ------------------------------------------------------------

ok(@workers >= 4, "workers: @workers");

for my $w (@workers) {
    my ($path) = grep { -x } map { "$root$_/$w" } qw(/usr/sbin /usr/bin);
    ok($path, "$w is packaged") or next;
    ($rc, $out) = run({}, $path, '--help');
    is($rc, 0, "$w --help");
    like($out, qr/^Usage: \Q$w\E /, "$w --help: usage");
    my $s = $path =~ m{/usr/sbin/} ? 8 : 1;
    like(`zcat '$root/usr/share/man/man$s/$w.$s.gz' 2>&1`,
         qr/^\.TH \Q\U$w\E\E "?$s"? /m, "$w: man page in section $s");
}

my @sql = map { s{.*/}{}r } glob("$repo/sql/*.sql");
my $pkg_sql = "$root/usr/share/$wrk/sql";
is_deeply([map { s{.*/}{}r } glob("$pkg_sql/*.sql")], \@sql,
          'the migrations of sql/');
is(scalar(grep { $t->slurp("$repo/sql/$_") eq $t->slurp("$pkg_sql/$_") }
          @sql), scalar @sql, '... unchanged');

is($t->slurp("$ctl{$wrk}/conffiles"),
   join('', map { "/etc/commerce/$_.conf\n" } qw(migrate projector replay)),
   'the configuration files are conffiles');

# Each worker reads its packaged configuration, then fails to reach
# PostgreSQL on a port where nothing listens: exit 1, not 2 (config).
my $pg = 'host=127.0.0.1 port=' . $t->port('CLOSED') . ' connect_timeout=2';
for my $c ([projector => '--rebuild', '--metrics.port=0'], ['migrate'],
           [replay => '--dlq-all'])
{
    my ($w, @args) = @$c;
    ($rc, $out) = run({}, 'timeout', '60', "$root/usr/sbin/commerce-$w",
                      "--config=$root/etc/commerce/$w.conf",
                      "--pg.conninfo=$pg", @args);
    is($rc, 1, "commerce-$w reads /etc/commerce/$w.conf") or diag($out);
    like($out, qr/connect/, "... and then tries PostgreSQL");
}


# ---- the units --------------------------------------------------------------

my $udir = "$root/lib/systemd/system";
my @units = qw(commerce-projector.service commerce-migrate.service);
my ($sysusers) = $t->slurp("$root/usr/lib/sysusers.d/$wrk.conf")
    =~ /^u (\S+) /m;

is($sysusers, 'commerce', 'sysusers.d declares the user commerce');
make_path("$dir/units");

for my $u (@units) {
    my $text = $t->slurp("$udir/$u");
    my ($exec, $conf) = $text =~ /^ExecStart=(\S+) --config=(\S+)$/m;
    my ($page, $s) = $text =~ /^Documentation=man:([\w-]+)\((\d)\)$/m;

    ok($exec && -x "$root$exec", "$u runs a packaged binary");
    ok($conf && -f "$root$conf", "$u: its configuration is packaged");
    ok($page && -f "$root/usr/share/man/man$s/$page.$s.gz",
       "$u: its man page is packaged");
    like($text, qr/^User=\Q$sysusers\E$/m, "$u: runs as $sysusers");
    like($text, qr/^Restart=on-failure$/m, "$u: restarts on failure");

    # systemd-analyze checks that ExecStart exists: on the unpacked one
    (my $copy = $text) =~ s{^ExecStart=}{ExecStart=$root}m;
    open my $fh, '>', "$dir/units/$u" or die $!;
    print {$fh} $copy;
    close $fh;
}

like($t->slurp("$udir/commerce-projector.service"), qr/^KillSignal=SIGTERM$/m,
     'the projector stops on SIGTERM');
like($t->slurp("$udir/commerce-projector.service"),
     qr/^Wants=.*commerce-migrate\.service/m,
     'the projector pulls in the migrations');

SKIP: {
    skip 'systemd-analyze not installed', 2
        unless system('command -v systemd-analyze >/dev/null') == 0;
    ($rc, $out) = run({}, 'systemd-analyze', 'verify', '--man=no',
                      map { "$dir/units/$_" } @units);
    is($rc, 0, 'systemd-analyze verify');
    is($out, '', '... says nothing');
}


# ---- the workers' postinst --------------------------------------------------

SKIP: {
    skip 'the postinst sets ownership: root only', 6 if $> != 0;
    skip 'systemd-sysusers not installed', 6
        unless system('command -v systemd-sysusers >/dev/null') == 0;

    # an administrator's override for replay.conf
    make_path("$root/var/lib/dpkg");
    open my $fh, '>', "$root/var/lib/dpkg/statoverride" or die $!;
    print {$fh} "root root 0644 /etc/commerce/replay.conf\n";
    close $fh;

    script($wrk, 'postinst', 'configure', '');

    my ($gid) = $t->slurp("$root/etc/group") =~ /^commerce:[^:]*:(\d+):/m;
    like($t->slurp("$root/etc/passwd"),
         qr{^commerce:[^:]*:\d+:\Q$gid\E:[^:]*:/nonexistent:
            /usr/sbin/nologin$}mx, 'postinst: the system user commerce');

    for my $f (qw(projector migrate)) {
        my @st = stat "$root/etc/commerce/$f.conf";
        is(sprintf('%d:%d %04o', $st[4], $st[5], $st[2] & 07777),
           "0:$gid 0640", "postinst: $f.conf is root:commerce 0640");
    }
    my @st = stat "$root/etc/commerce/replay.conf";
    is(sprintf('%04o', $st[2] & 07777), '0644',
       'postinst: an override is left alone');

    ok(!-e "$root/etc/systemd/system/multi-user.target.wants/"
           . 'commerce-projector.service',
       'postinst: the projector is not enabled');
}

$t->done;
