#!/usr/bin/perl

# commerce-jwt, the operator's tool on the JWT core: verify against the
# vectors made by independent tools (t/fixtures/jwt/make-vectors.sh: the
# jose CLI and openssl), each with its reason and exit code; sign and
# keygen checked the other way round, their tokens verified by jose (RS,
# PS, ES, HS) and openssl (EdDSA); the errors of its options and files.
# Needs the built tool, jose and openssl (make deps); no server.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use File::Temp qw(tempdir);
use IPC::Open3 qw(open3);
use JSON::PP qw(decode_json);
use MIME::Base64 qw(decode_base64);
use Symbol qw(gensym);
use Test::More;

use CommerceTest;

my $repo = $CommerceTest::REPO;
my $build = $ENV{COMMERCE_BUILD} // "$repo/build";
my $tool = "$build/bin/commerce-jwt";
my $fix = "$repo/t/fixtures/jwt";
my $dir = tempdir('jwt-tool-XXXXXX', TMPDIR => 1, CLEANUP => 1);

BAIL_OUT("$tool is missing: make workers") unless -x $tool;

for my $cmd (qw(jose openssl)) {
    BAIL_OUT("$cmd is missing: make deps installs it")
        unless grep { -x "$_/$cmd" } split /:/, $ENV{PATH};
}

my @NOW = ('--now', 1700000000, '--issuer', 'https://issuer.test',
           '--audience', 'commerce');


# Runs a command with stdin; returns (exit code, stdout, stderr).
sub run {
    my ($in, @cmd) = @_;

    my $err = gensym;
    my $pid = open3(my $to, my $from, $err, @cmd);

    print {$to} $in // '';
    close $to;

    local $/;
    my $out = <$from> // '';
    my $errs = <$err> // '';
    waitpid($pid, 0);

    return ($? >> 8, $out, $errs);
}


sub slurp { CommerceTest->slurp(@_) }


# the messages of the JSON log lines on stderr
sub msg {
    my ($err) = @_;

    return join "\n", map { decode_json($_)->{msg} }
                      grep { /^\{/ } split /\n/, $err;
}


sub b64u_decode {
    my ($s) = @_;
    $s =~ tr{-_}{+/};
    $s .= '=' x ((4 - length($s) % 4) % 4);
    return decode_base64($s);
}


# -------------------------------------------------- independent vectors ---

{
    my ($n, %reasons) = (0);

    for my $line (split /\n/, slurp("$fix/vectors.txt")) {
        next if $line =~ /^#/;

        my ($reason, $name, $token) = split / /, $line, 3;
        my ($rc, $out, $err) = run("$token\n", $tool, 'verify',
                                   '--jwks', "$fix/jwks.json", @NOW);

        if ($reason eq 'ok') {
            is($rc, 0, "$name: valid, exit 0") or diag($err);

            my @lines = split /\n/, $out;
            my ($h, $p) = split /\./, $token;
            is_deeply([map { decode_json($_) } @lines],
                      [decode_json(b64u_decode($h)),
                       decode_json(b64u_decode($p))],
                      "$name: prints the header and the claims");
        } else {
            is($rc, 1, "$name: invalid, exit 1");
            like($err, qr/^invalid token: \Q$reason\E: /,
                 "$name: the reason $reason on stderr");
            is($out, '', "$name: nothing on stdout");
        }

        $reasons{$reason}++;
        $n++;
    }

    ok($n >= 70, "$n vectors");
    ok(keys %reasons >= 15, 'of ' . keys(%reasons) . ' reasons');
}

# --no-claims: the signature only, the payload printed as it is
{
    my ($token) = slurp("$fix/vectors.txt") =~ /^malformed_claims payload-text (\S+)/m;

    my ($rc, $out) = run($token, $tool, 'verify', '--jwks', "$fix/jwks.json",
                         '--no-claims');
    is($rc, 0, '--no-claims: a payload that is not JSON verifies');
    like($out, qr/\n\Qhello\E\n\z/, '--no-claims: the payload printed');

    ($token) = slurp("$fix/vectors.txt") =~ /^expired expired (\S+)/m;
    ($rc) = run($token, $tool, 'verify', '--jwks', "$fix/jwks.json",
                '--no-claims');
    is($rc, 0, '--no-claims: exp is not looked at');

    ($token) = slurp("$fix/vectors.txt") =~ /^bad_signature tampered-payload (\S+)/m;
    ($rc) = run($token, $tool, 'verify', '--jwks', "$fix/jwks.json",
                '--no-claims');
    is($rc, 1, '--no-claims: a bad signature still fails');
}

# --alg narrows, --type requires, --leeway widens
{
    my ($es) = slurp("$fix/vectors.txt") =~ /^ok es256 (\S+)/m;
    my ($rs) = slurp("$fix/vectors.txt") =~ /^ok rs256 (\S+)/m;
    my ($exp) = slurp("$fix/vectors.txt") =~ /^expired expired-now (\S+)/m;
    my @v = ($tool, 'verify', '--jwks', "$fix/jwks.json", @NOW);

    my ($rc, $out, $err) = run($es, @v, '--alg', 'RS256,PS256');
    like($err, qr/^invalid token: alg_not_allowed:/, '--alg RS256,PS256: '
         . 'ES256 refused');
    ($rc) = run($rs, @v, '--alg', 'RS256,PS256');
    is($rc, 0, '--alg RS256,PS256: RS256 taken');

    ($rc) = run($rs, @v, '--type', 'jwt');
    is($rc, 0, '--type jwt: typ "JWT" taken');
    ($rc, $out, $err) = run($es, @v, '--type', 'jwt');
    like($err, qr/^invalid token: wrong_type:/, '--type: no typ refused');

    ($rc) = run($exp, @v, '--leeway', 1);
    is($rc, 0, '--leeway 1: expired a second ago is taken');

    ($rc, $out, $err) = run('x' x 8193, @v);
    like($err, qr/^invalid token: token_too_long:/, 'a token over 8 KiB');
    ($rc, $out, $err) = run("\n", @v);
    like($err, qr/^invalid token: missing_token:/, 'no token');
}


# --------------------------------------------------- sign and keygen ---

my $claims = '{"sub":"u-1","iss":"https://issuer.test","exp":2000000000}';

for my $alg (qw(RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512
                EdDSA HS256 HS384 HS512))
{
    my ($key, $set) = ("$dir/$alg.jwk", "$dir/$alg.jwks");

    my ($rc, $out, $err) = run('', $tool, 'keygen', '--alg', $alg,
                               '--kid', "k-$alg", '--out-key', $key,
                               '--out-jwks', $set);
    is($rc, 0, "keygen $alg") or diag($err);

    is((stat $key)[2] & 0777, 0600, "keygen $alg: the private key is 0600");
    is((stat $set)[2] & 0777, $alg =~ /^HS/ ? 0600 : 0644,
       "keygen $alg: the set is " . ($alg =~ /^HS/ ? '0600 (a secret)'
                                                   : '0644'));

    my $jwks = decode_json(slurp($set));
    is(scalar @{ $jwks->{keys} }, 1, "keygen $alg: one key in the set");
    is($jwks->{keys}[0]{alg}, $alg, "keygen $alg: pinned to $alg");
    ok(!exists $jwks->{keys}[0]{d}, "keygen $alg: no private part")
        unless $alg =~ /^HS/;

    ($rc, my $token, $err) = run($claims, $tool, 'sign', '--key', $key);
    is($rc, 0, "sign $alg (claims from stdin)") or diag($err);
    chomp $token;

    ($rc, $out) = run($token, $tool, 'verify', '--jwks', $set);
    is($rc, 0, "sign $alg: verify takes it");
    like($out, qr/"kid":"k-\Q$alg\E"/, "sign $alg: the key's kid");

    if ($alg eq 'EdDSA') {
        # openssl verifies it: the public key as DER around the JWK's x
        my $x = b64u_decode($jwks->{keys}[0]{x});
        my ($h, $p, $s) = split /\./, $token;
        my $der = pack('H*', '302a300506032b6570032100') . $x;

        open my $fh, '>', "$dir/ed.der" or die $!;
        print {$fh} $der;
        close $fh;
        open $fh, '>', "$dir/ed.in" or die $!;
        print {$fh} "$h.$p";
        close $fh;
        open $fh, '>', "$dir/ed.sig" or die $!;
        print {$fh} b64u_decode($s);
        close $fh;

        ($rc, $out, $err) = run('', 'openssl', 'pkeyutl', '-verify',
                                '-pubin', '-keyform', 'DER', '-inkey',
                                "$dir/ed.der", '-rawin', '-in', "$dir/ed.in",
                                '-sigfile', "$dir/ed.sig");
        is($rc, 0, 'sign EdDSA: openssl verifies the signature')
            or diag("$out$err");

    } else {
        open my $fh, '>', "$dir/token" or die $!;
        print {$fh} $token;
        close $fh;

        ($rc, $out, $err) = run('', 'jose', 'jws', 'ver', '-i', "$dir/token",
                                '-k', $set, '-O', '-');
        is($rc, 0, "sign $alg: jose verifies the signature") or diag($err);
        is_deeply(decode_json($out), decode_json($claims),
                  "sign $alg: jose reads the claims");
    }
}

# the keys of the vectors: a jose JWK without alg, PEM keys from openssl
{
    my @v = ($tool, 'verify', '--jwks', "$fix/jwks.json");

    my ($rc, $out, $err) = run('', $tool, 'sign', '--key',
                               "$fix/keys/rsa.jwk", '--claims', $claims);
    is($rc, 2, 'sign: an RSA key without alg needs --alg');
    like(msg($err), qr/give --alg/, 'sign: ... and says so');

    for my $case (['rsa.jwk', 'PS512', ''], ['rsa-ossl.pem', 'RS384',
                  'rsa-ossl'], ['ec-ossl.pem', '', 'ec-ossl'],
                  ['ed25519.pem', '', 'ed25519'], ['ec512.jwk', '', ''])
    {
        my ($file, $alg, $kid) = @$case;

        ($rc, my $token) = run('', $tool, 'sign', '--key',
                               "$fix/keys/$file", '--claims', $claims,
                               $alg ? ('--alg', $alg) : (),
                               $kid ? ('--kid', $kid) : ());
        ($rc, $out, $err) = run($token, @v);
        is($rc, 0, "sign --key $file" . ($alg ? " --alg $alg" : '')
                   . ': verifies') or diag($err);
    }

    ($rc, my $token) = run('', $tool, 'sign', '--key', "$fix/keys/hs256.jwk",
                           '--claims', '{"exp":2000000000}', '--ttl', '1h',
                           '--header', '{"typ":"at+jwt"}');
    ($rc, $out) = run($token, @v, '--type', 'application/at+jwt');
    is($rc, 0, 'sign --header {"typ":...}: verify --type takes it');
    like($out, qr/"exp":2000000000/, 'sign --ttl: an exp given is kept');

    ($rc, $token) = run('', $tool, 'sign', '--key', "$fix/keys/hs256.jwk",
                        '--claims', '{}', '--ttl', '10m');
    ($rc, $out) = run($token, @v);
    my $c = decode_json((split /\n/, $out)[1]);
    ok(abs($c->{exp} - $c->{iat} - 600) <= 1, 'sign --ttl 10m: exp = iat + '
       . '600');
}


# ---------------------------------------------------------- errors ---

{
    my ($rc, $out, $err) = run('x', $tool, 'verify');
    is($rc, 2, 'verify without --jwks: exit 2');
    like(msg($err), qr/verify needs --jwks/, '... with the reason');

    for my $line (split /\n/, slurp("$fix/bad.txt")) {
        my ($name, $want) = split / /, $line, 2;

        ($rc, $out, $err) = run('x', $tool, 'verify', '--jwks',
                                "$fix/bad/$name.json");
        is($rc, 2, "verify --jwks bad/$name.json: exit 2");
        my $m = msg($err);
        ok(index($m, "$fix/bad/$name.json") >= 0 && index($m, $want) > 0,
           "bad/$name.json: the file and \"$want\"") or diag($m);
    }

    ($rc, $out, $err) = run('x', $tool, 'verify', '--jwks',
                            "$dir/none.json");
    like(msg($err), qr/none\.json: No such file/, 'a keys file that is not there');

    ($rc, $out, $err) = run('x', $tool, 'verify', '--jwks',
                            "$fix/jwks.json", '--alg', 'RS256,none');
    is($rc, 2, '--alg none: exit 2');
    like(msg($err), qr/"none" is not an algorithm/, '... naming it');

    ($rc, $out, $err) = run('', $tool, 'sign', '--key', "$fix/keys/ec256.jwk",
                            '--alg', 'ES384', '--claims', '{}');
    like(msg($err), qr/does not sign with --alg ES384/, 'sign: an alg the key '
         . 'does not fit');

    ($rc, $out, $err) = run('', $tool, 'sign', '--key', "$fix/keys/ec256.jwk",
                            '--claims', '[1]');
    is($rc, 2, 'sign: claims that are not an object, exit 2');

    ($rc, $out, $err) = run('', $tool, 'sign', '--key', "$fix/jwks.json",
                            '--claims', '{}');
    like(msg($err), qr/a JWK Set of one key is taken/, 'sign: a set of many keys');

    ($rc, $out, $err) = run('', $tool, 'sign', '--key',
                            "$fix/bad/oct-short.json", '--claims', '{}');
    like(msg($err), qr/shorter than HS256's hash/, 'sign: a weak key is refused');

    ($rc, $out, $err) = run('', $tool, 'keygen', '--alg', 'none',
                            '--out-key', "$dir/k", '--out-jwks', "$dir/s");
    is($rc, 2, 'keygen --alg none: exit 2');

    ($rc, $out, $err) = run('', $tool, 'frobnicate');
    is($rc, 2, 'an unknown command: exit 2');
    like(msg($err), qr/unknown command "frobnicate"/, '... named');

    ($rc, $out) = run('', $tool, '--help');
    is($rc, 0, '--help: exit 0');
    like($out, qr/Commands \(the first argument\): verify/, '--help: the '
         . 'commands');
}

# bench: a line per algorithm asked for (figures are not checked)
{
    my ($rc, $out) = run('', $tool, 'bench', '--alg', 'ES256,HS512',
                         '--iterations', 3);
    is($rc, 0, 'bench runs');
    like($out, qr/^ES256\s+[\d.]+\s+\d+\nHS512\s+[\d.]+\s+\d+\n\z/m,
         'bench: a line for ES256 and HS512');
}

done_testing();
