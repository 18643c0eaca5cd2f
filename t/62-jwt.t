#!/usr/bin/perl

# ngx_http_commerce_jwt_module over HTTP: commerce_jwt in the access
# phase with keys from JWK Set files.  The tokens are the vectors of
# t/fixtures/jwt (made by jose and openssl), every algorithm and every
# attack, and tokens that commerce-jwt signs with the vectors' keys for
# the claims that depend on the clock; answers as RFC 6750 says, roles,
# variables (and a commerce_limit keyed by $commerce_jwt_sub), the log,
# reload of the keys file, and the errors of nginx -t.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use File::Copy qw(copy);
use IPC::Open3 qw(open3);
use JSON::PP qw(decode_json);
use Test::More;
use Time::HiRes qw(sleep);

use CommerceTest;

my $t = CommerceTest->new;
my $dir = $t->dir;
my $repo = $CommerceTest::REPO;
my $fix = "$repo/t/fixtures/jwt";
my $tool = ($ENV{COMMERCE_BUILD} // "$repo/build") . '/bin/commerce-jwt';

BAIL_OUT("$tool is missing: make workers") unless -x $tool;

copy("$fix/jwks.json", "$dir/keys.json") or die $!;

mkdir "$dir/html";
open my $fh, '>', "$dir/html/ok.txt" or die $!;
print {$fh} "ok\n";
close $fh;

my %vec;
for (split /\n/, $t->slurp("$fix/vectors.txt")) {
    next if /^#/;
    my ($reason, $name, $token) = split / /, $_, 3;
    $vec{$name} = [$reason, $token];
}

my $http = <<'EOF';
    log_format jwt '$uri $status "$commerce_jwt_sub" "$commerce_jwt_claim_iss"';

    commerce_jwt_keys_file %%TESTDIR%%/keys.json;
    commerce_jwt_issuer https://issuer.test;
    commerce_jwt_audience api;
    commerce_jwt_audience commerce;

    commerce_limit_zone $commerce_jwt_sub zone=per_user:1m rate=1r/m;

    server {
        listen 127.0.0.1:%%PORT_HTTP%%;
        large_client_header_buffers 4 16k;
        root %%TESTDIR%%/html;
        default_type text/plain;
        access_log %%TESTDIR%%/access.log jwt;

        # an empty value adds no header
        add_header X-Sub "$commerce_jwt_sub" always;
        add_header X-Iss "$commerce_jwt_claim_iss" always;
        add_header X-Exp "$commerce_jwt_claim_exp" always;

        commerce_jwt on;

        location / { try_files /ok.txt =404; }
        location /open { commerce_jwt off; try_files /ok.txt =404; }

        location /admin {
            commerce_jwt_require_role admin;
            try_files /ok.txt =404;
        }

        location /scope {
            commerce_jwt_roles_claim scope;
            commerce_jwt_require_role orders:write;
            commerce_jwt_require_role read;
            try_files /ok.txt =404;
        }

        location /cookie {
            commerce_jwt $cookie_token realm=shop;
            try_files /ok.txt =404;
        }

        location /typed { commerce_jwt_type at+jwt; try_files /ok.txt =404; }
        location /leeway { commerce_jwt_leeway 60; try_files /ok.txt =404; }
        location /es256 { commerce_jwt_alg ES256; try_files /ok.txt =404; }
        location /anyaud {
            commerce_jwt_audience nobody;
            try_files /ok.txt =404;
        }

        location /limited {
            commerce_limit zone=per_user;
            try_files /ok.txt =404;
        }

        location /rotated {
            commerce_jwt_keys_file %%TESTDIR%%/rotated.json;
            try_files /ok.txt =404;
        }
    }
EOF

# the second keys file: the EC P-256 key of the vectors, to be rotated
write_rotated('ec256');
$t->write_nginx_conf($http);
$t->start_nginx;


# commerce-jwt sign with a key of the vectors; returns the token
sub sign {
    my ($key, $claims, @opts) = @_;

    my $pid = open3(my $in, my $out, undef, $tool, 'sign', '--key',
                    "$fix/keys/$key.jwk", '--claims', $claims, @opts);
    close $in;
    my $token = do { local $/; <$out> } // '';
    waitpid($pid, 0);
    die "sign failed: $?" if $?;
    chomp $token;

    return $token;
}


sub claims {
    my (%c) = @_;
    my %base = (iss => 'https://issuer.test', aud => 'commerce',
                sub => 'user-1', exp => time + 600);
    %base = (%base, %c);
    delete $base{$_} for grep { !defined $base{$_} } keys %base;
    return JSON::PP->new->canonical->encode(\%base);
}


sub get {
    my ($path, $token, %h) = @_;

    $h{Authorization} = "Bearer $token" if defined $token;

    return $t->http(GET => $path, %h);
}


sub body { my $r = shift; return eval { decode_json($r->{body}) } // {} }


sub write_rotated { write_set("$dir/rotated.json", @_) }


# a set of the vectors' public keys of these kids, written atomically
sub write_set {
    my ($path, @kids) = @_;

    my $set = decode_json($t->slurp("$fix/jwks.json"));
    my %want = map { $_ => 1 } @kids;
    $set->{keys} = [grep { $want{ $_->{kid} } } @{ $set->{keys} }];

    open my $fh, '>', "$path.tmp" or die $!;
    print {$fh} JSON::PP->new->encode($set);
    close $fh;
    rename "$path.tmp", $path or die $!;
}


# ---------------------------------------------- every algorithm, valid ---

for my $name (qw(rs256 rs384 rs512 ps256 ps384 ps512 es256 es384 es512
                 eddsa hs256 hs384 hs512 rs256-openssl ps256-openssl
                 es256-openssl-raw no-kid))
{
    my $r = get('/', $vec{$name}[1]);

    is($r->{status}, 200, "$name: 200") or diag($r->{body});
    is($r->{headers}{'x-iss'}, 'https://issuer.test',
       "$name: \$commerce_jwt_claim_iss");
}

is(get('/', $vec{rs256}[1])->{headers}{'x-sub'}, 'user-1',
   '$commerce_jwt_sub is the sub claim');
is(get('/', $vec{rs256}[1])->{headers}{'x-exp'} // '', '',
   '$commerce_jwt_claim_exp: empty, exp is a number');
is(get('/', $vec{'aud-array'}[1])->{status}, 200,
   'aud as an array holding a configured audience');
is(get('/', $vec{'aud-array'}[1])->{headers}{'x-sub'} // '', '',
   '$commerce_jwt_sub: empty without a sub claim');

{
    my $r = get('/open', $vec{rs256}[1]);
    is($r->{status}, 200, 'commerce_jwt off: no check');
    is($r->{headers}{'x-sub'} // '', '',
       'commerce_jwt off: the variables are empty (no header)');

    is(get('/open')->{status}, 200, 'commerce_jwt off: no token needed');
}


# ------------------------------------------------------------ attacks ---

my %clock = map { $_ => 1 } qw(expired expired-now exp-next-second
                               nbf-future nbf-now);
my $attacks = 0;

for my $name (sort keys %vec) {
    my ($reason, $token) = @{ $vec{$name} };

    next if $reason eq 'ok' || $clock{$name};

    my $r = get('/', $token);
    my $b = body($r);

    is($r->{status}, 401, "$name: 401");
    is($b->{error}, $reason, "$name: error $reason");
    is($r->{headers}{'www-authenticate'},
       'Bearer realm="commerce", error="invalid_token", '
       . "error_description=\"$b->{message}\"",
       "$name: WWW-Authenticate invalid_token with the description");
    is($r->{headers}{'cache-control'}, 'no-store', "$name: no-store");
    is($r->{headers}{'x-sub'} // '', '', "$name: no sub");
    $attacks++;
}

ok($attacks >= 45, "$attacks attacks");


# ----------------------------------------------------- missing tokens ---

{
    my $r = get('/');
    is($r->{status}, 401, 'no token: 401');
    is($r->{headers}{'www-authenticate'}, 'Bearer realm="commerce"',
       'no token: a challenge without an error (RFC 6750 3.1)');
    is(body($r)->{error}, 'missing_token', 'no token: missing_token');
    like($r->{headers}{'content-type'}, qr{^application/json},
         'no token: a JSON body');

    $r = $t->http(GET => '/', Authorization => 'Basic dXNlcjpwYXNz');
    is($r->{headers}{'www-authenticate'}, 'Bearer realm="commerce"',
       'Basic credentials: as no token');

    $r = $t->http(GET => '/', Authorization => 'Bearer   ');
    is(body($r)->{error}, 'missing_token', 'Bearer and spaces: no token');

    $r = $t->http(GET => '/', Authorization => "bEARER  $vec{es256}[1]  ");
    is($r->{status}, 200, 'the scheme in any case, spaces around the token');

    $r = $t->http(GET => '/', Authorization => "Bearer $vec{es256}[1]A");
    is($r->{status}, 401, 'a character more: refused');

    $r = $t->http(GET => '/', Authorization => 'Bearer ' . ('a' x 8193));
    is(body($r)->{error}, 'token_too_long', 'a token over 8 KiB');

    $r = $t->http(HEAD => '/');
    is($r->{status}, 401, 'HEAD: 401');
}

# the token from a variable, with its own realm
{
    my $r = $t->http(GET => '/cookie', Cookie => "token=$vec{ps384}[1]");
    is($r->{status}, 200, '$cookie_token: 200');
    is($r->{headers}{'x-sub'}, 'user-1', '$cookie_token: the sub');

    $r = $t->http(GET => '/cookie', Authorization => "Bearer $vec{ps384}[1]");
    is($r->{status}, 401, '$cookie_token: Authorization is not looked at');
    is($r->{headers}{'www-authenticate'}, 'Bearer realm="shop"',
       'realm=shop: the challenge names it');
}

# a body is read and dropped, the connection goes on
{
    my $c = $t->conn;
    my $r = $c->request(POST => '/', -body => 'x' x 5000,
                        'Content-Type' => 'application/json');
    is($r->{status}, 401, 'POST without a token: 401');

    $r = $c->request(GET => '/', Authorization => "Bearer $vec{hs512}[1]");
    is($r->{status}, 200, '... and the connection serves the next request');
    $c->close;
}


# ------------------------------------------------------------- claims ---

{
    my %case = (
        'exp 10 s ago' => [claims(exp => time - 10), 'expired'],
        'nbf in 10 min' => [claims(nbf => time + 600), 'not_yet_valid'],
        'no exp' => [claims(exp => undef), 'missing_exp'],
        'another iss' => [claims(iss => 'https://evil.test'), 'wrong_issuer'],
        'another aud' => [claims(aud => 'other'), 'wrong_audience'],
        'aud [other, api]' => [claims(aud => ['other', 'api']), 'ok'],
        'exp as a string' => [claims(exp => 'soon'), 'malformed_claims'],
    );

    for my $what (sort keys %case) {
        my ($c, $reason) = @{ $case{$what} };
        my $r = get('/', sign('ec256', $c));

        if ($reason eq 'ok') {
            is($r->{status}, 200, "$what: 200");
        } else {
            is($r->{status}, 401, "$what: 401");
            is(body($r)->{error}, $reason, "$what: $reason");
        }
    }

    my $late = sign('hs256', claims(exp => time - 10));
    is(get('/leeway', $late)->{status}, 200,
       'commerce_jwt_leeway 60: expired 10 s ago is taken');
    is(get('/leeway', sign('hs256', claims(exp => time - 120)))->{status}, 401,
       'commerce_jwt_leeway 60: expired 2 min ago is not');
    is(get('/leeway', sign('hs256', claims(nbf => time + 30)))->{status}, 200,
       'commerce_jwt_leeway 60: nbf in 30 s is taken');

    is(body(get('/anyaud', $vec{rs256}[1]))->{error}, 'wrong_audience',
       'a level\'s commerce_jwt_audience replaces the inherited ones');

    my $typed = sign('ec256', claims(), '--header', '{"typ":"at+jwt"}');
    is(get('/typed', $typed)->{status}, 200, 'commerce_jwt_type at+jwt');
    is(body(get('/typed', $vec{rs256}[1]))->{error}, 'wrong_type',
       'commerce_jwt_type at+jwt: typ JWT refused');

    is(get('/es256', $vec{es256}[1])->{status}, 200, 'commerce_jwt_alg ES256');
    is(body(get('/es256', $vec{rs256}[1]))->{error}, 'alg_not_allowed',
       'commerce_jwt_alg ES256: RS256 refused');
}


# -------------------------------------------------------------- roles ---

{
    my $shopper = sign('ec384', claims(roles => ['shopper']));
    my $admin = sign('ec384', claims(roles => ['shopper', 'admin']));
    my $string = sign('ec384', claims(roles => 'shopper admin'));

    my $r = get('/admin', $shopper);
    is($r->{status}, 403, 'no admin role: 403');
    is(body($r)->{error}, 'missing_role', 'no admin role: missing_role');
    is($r->{headers}{'www-authenticate'},
       'Bearer realm="commerce", error="insufficient_scope", '
       . 'error_description="' . body($r)->{message} . '", scope="admin"',
       'no admin role: insufficient_scope with the scope needed');

    is(get('/admin', $admin)->{status}, 200, 'roles [.., admin]: 200');
    is(get('/admin', $string)->{status}, 200, 'roles "shopper admin": 200');
    is(get('/admin', sign('ec384', claims()))->{status}, 403,
       'no roles claim: 403');
    is(get('/admin')->{status}, 401, 'no token at a role\'s location: 401');

    my $both = sign('ec384', claims(scope => 'read orders:write'));
    my $one = sign('ec384', claims(scope => 'read', roles => ['orders:write']));

    is(get('/scope', $both)->{status}, 200,
       'commerce_jwt_roles_claim scope: both roles in it');
    $r = get('/scope', $one);
    is($r->{status}, 403, 'commerce_jwt_roles_claim scope: one role missing');
    like($r->{headers}{'www-authenticate'}, qr/scope="orders:write read"$/,
         'the scope lists every role required');
}


# ----------------------------------------------- the limit, per user ---

{
    my $a = sign('hs384', claims(sub => 'alice'));
    my $b = sign('hs384', claims(sub => 'bob'));

    is(get('/limited', $a)->{status}, 200, 'limit per sub: alice once');
    is(get('/limited', $a)->{status}, 429, 'limit per sub: alice twice, 429');
    is(get('/limited', $b)->{status}, 200, 'limit per sub: bob has his own');
    is(get('/limited')->{status}, 401,
       'limit per sub: no token is not limited, but refused');
}


# ---------------------------------------------------------------- log ---

{
    my $token = sign('ec256', claims(exp => time - 5));
    get('/', $token);
    get('/', $vec{'wrong-kid'}[1]);

    sleep 0.3;
    my $log = $t->slurp($t->error_log_path);
    my ($sig) = $token =~ /\.([^.]+)$/;

    like($log, qr/\[info\].*commerce_jwt: expired: the token has expired, alg ES256, kid "ec256"/,
         'the refusal logged with the reason, alg and kid');
    like($log, qr/commerce_jwt: unknown_kid: .*kid "nope"/,
         'an unknown kid logged');
    unlike($log, qr/\Q$sig\E/, 'never the token');
    unlike($log, qr/\Q$vec{rs256}[1]\E/, 'never a valid token');

    my @access = split /\n/, $t->slurp("$dir/access.log");
    ok((grep { $_ eq '/ok.txt 200 "user-1" "https://issuer.test"' } @access),
       'access log: $commerce_jwt_sub and $commerce_jwt_claim_iss');
    ok((grep { $_ eq '/ 401 "-" "-"' } @access),
       'access log: empty for a refused token');
}


# ------------------------------------------------------------- reload ---

{
    my $old = $vec{es256}[1];
    my $new = $vec{rs256}[1];

    is(get('/rotated', $old)->{status}, 200, 'rotated.json: the EC key');
    is(body(get('/rotated', $new))->{error}, 'unknown_kid',
       'rotated.json: not the RSA key');

    write_rotated('rsa');
    is(get('/rotated', $new)->{status}, 401,
       'the file changed: nothing changes before a reload');

    ok($t->reload_nginx, 'reload');
    is(get('/rotated', $new)->{status}, 200, 'after the reload: the RSA key');
    is(body(get('/rotated', $old))->{error}, 'unknown_kid',
       'after the reload: the EC key is gone');

    # a bad file: the reload fails, the old keys stay
    copy("$fix/bad/rsa1024.json", "$dir/rotated.json") or die $!;
    ok(!$t->nginx_test_ok, 'a bad keys file fails nginx -t');

    # SIGHUP, as nginx -s reload sends it (which reads the configuration
    # first, and would refuse to send it)
    my $pos = -s $t->error_log_path;
    my @workers = $t->worker_pids;
    kill 'HUP', $t->master_pid;

    my $emerg;
    for (1 .. 300) {
        ($emerg) = grep { /\[emerg\]/ } split /\n/,
                   substr($t->slurp($t->error_log_path), $pos);
        last if $emerg;
        sleep 0.05;
    }

    like($emerg // '', qr/rotated\.json: key 1 \(kid "small"\): an RSA key of 1024 bits.* in \Q$dir\E\/nginx\.conf:\d+/,
         'the failed reload: the master logs the file, the key and the line');
    is(get('/rotated', $new)->{status}, 200,
       'after the failed reload: the keys read before');
    is_deeply([$t->worker_pids], \@workers,
              'after the failed reload: the same workers');

    # the [emerg] was this test's own: kept out of the final log check
    my $log = $t->slurp($t->error_log_path);
    $log =~ s/^.*\[emerg\].*rotated\.json.*\n//mg;
    open my $fh, '>', $t->error_log_path or die $!;
    print {$fh} $log;
    close $fh;
}


# ------------------------------------------------------------ nginx -t ---

my $n = 0;

sub conf_error {
    my ($text, $what, @re) = @_;

    my $name = 'bad' . ++$n;
    $t->write_nginx_conf($text, name => $name);
    my ($ok, $out) = $t->nginx_test_ok($name);

    ok(!$ok, "nginx -t fails: $what");
    like($out, $_, "$what: $_") for @re;
}

{
    my $server = "server { listen 127.0.0.1:%%PORT_X%%; location / {\n"
                 . " commerce_jwt on; } }\n";

    for my $line (split /\n/, $t->slurp("$fix/bad.txt")) {
        my ($name, $want) = split / /, $line, 2;

        my $path = $t->write_nginx_conf("commerce_jwt_keys_file "
                                        . "$fix/bad/$name.json;\n$server",
                                        name => "bad-$name");
        my ($ok, $out) = $t->nginx_test_ok("bad-$name");
        my @lines = split /\n/, $t->slurp($path);
        my ($line) = grep { $lines[$_ - 1] =~ /commerce_jwt_keys_file/ }
                     1 .. @lines;

        ok(!$ok, "nginx -t fails: bad/$name.json");
        my ($emerg) = $out =~ /^(.*\[emerg\].*)$/m;
        ok(defined $emerg && index($emerg, "[emerg] $fix/bad/$name.json") >= 0
           && index($emerg, $want) > 0 && $emerg =~ / in \Q$path\E:$line$/,
           "bad/$name.json: the file, \"$want\", the line $line")
            or diag($out);
    }

    conf_error("commerce_jwt_keys_file $dir/none.json;\n$server",
               'a keys file that is not there', qr/none\.json: No such file/);
    conf_error($server, 'commerce_jwt without keys',
               qr/"commerce_jwt" needs "commerce_jwt_keys_file"/);
    conf_error("commerce_jwt_keys_file $fix/jwks.json;\n"
               . "server { location / { commerce_jwt yes; } }",
               'commerce_jwt yes', qr/takes on, off or a \$variable/);
    conf_error("commerce_jwt_keys_file $fix/jwks.json;\n"
               . "server { location / { commerce_jwt on realm=a\"b; } }",
               'a realm with a quote', qr/has a realm with a quote/);
    conf_error("commerce_jwt_keys_file $fix/jwks.json;\n"
               . "server { location / { commerce_jwt on; commerce_jwt off; } }",
               'commerce_jwt twice', qr/is duplicate/);
    conf_error("commerce_jwt_alg RS256 none;", 'commerce_jwt_alg none',
               qr/"none" is not one of RS256/);
    conf_error("commerce_jwt_require_role \"a b\";", 'a role with a space',
               qr/the role "a b" is empty, or has a space/);
    conf_error("commerce_jwt_keys_file $fix/keys/hs256.jwk;",
               'a JWK that is not a set', qr/not a JWK Set/);
    conf_error("commerce_jwt on;", 'commerce_jwt in http',
               qr/"commerce_jwt" directive is not allowed here/);

    # keys only for HS*, tokens only of ES256: nothing could ever pass
    open my $fh, '>', "$dir/hs.json" or die $!;
    print {$fh} '{"keys":[' . $t->slurp("$fix/keys/hs256.jwk") . ']}';
    close $fh;

    conf_error("commerce_jwt_keys_file $dir/hs.json;\ncommerce_jwt_alg ES256;"
               . "\n$server", 'no key for the algorithms taken',
               qr/no key of "commerce_jwt_keys_file" is for an algorithm of "commerce_jwt_alg"/);

    $t->write_nginx_conf("commerce_jwt_keys_file $dir/hs.json;\n"
                         . "commerce_jwt_keys_file $fix/jwks.json;\n"
                         . $server, name => 'twice');
    my ($ok, $out) = $t->nginx_test_ok('twice');
    ok(!$ok, 'two files with a kid of one kty twice: refused');
    like($out, qr/another key of kty oct \(key 1 of the set\) has this kid/,
         '... naming the key it clashes with');

    write_set("$dir/ec.json", 'ec256', 'ec384');
    $t->write_nginx_conf("commerce_jwt_keys_file $dir/hs.json;\n"
                         . "commerce_jwt_keys_file $dir/ec.json;\n"
                         . $server, name => 'two');
    ($ok, $out) = $t->nginx_test_ok('two');
    ok($ok, 'two keys files, one set') or diag($out);
}

$t->done;
