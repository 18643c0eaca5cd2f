#!/usr/bin/perl

# docs/workers.md is what scripts/gen-workers-doc.sh makes of the built
# workers' --help: an option added, changed or removed without
# `make workers-doc` fails here. Needs the binaries, no server.

use strict;
use warnings;

use File::Temp qw(tempdir);
use Test::More;
use lib 't/lib';
use CommerceTest;

my $repo  = $CommerceTest::REPO;
my $build = $ENV{COMMERCE_BUILD} // "$repo/build";
my $doc   = "$repo/docs/workers.md";
my $dir   = tempdir('workers-doc-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $new   = "$dir/workers.md";

ok(-f $doc, 'docs/workers.md exists');

system("$repo/scripts/gen-workers-doc.sh '$build/bin' > '$new'");
is($?, 0, 'gen-workers-doc.sh runs on the built workers');

my $diff = `diff -u '$doc' '$new'`;
ok($diff eq '', 'docs/workers.md matches the workers\' --help')
    or diag("run `make workers-doc`; what differs:\n$diff");

# Each worker has its section, and each section lists the flags common
# to all: the doc covers every worker the tree builds (a folder with a
# main.c).
my $text = CommerceTest->slurp($new);
for my $w (map { m{/([^/]+)/main\.c$} } glob("$repo/workers/*/main.c"))
{
    like($text, qr/^## commerce-\Q$w\E\n\n```text\n
                   Usage:\ commerce-\Q$w\E\ .*?--log-level=STR/msx,
         "commerce-$w has its section with --log-level");
}

done_testing();

