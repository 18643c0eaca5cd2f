#!/usr/bin/perl

# The reference documents against the code, in both directions:
#
#   docs/directives.md documents exactly the directives of the module's
#   command tables (ngx_commerce_module/*.c) and the variables it adds (a
#   prefix variable as $<prefix>name), each
#   directive with a Syntax, a Default and a Context line, the context being
#   the one its command table allows;
#   README.md's directive index lists the same directives and variables,
#   each linked to its entry;
#   docs/contract.md names every macro of common/commerce_contract.h, on a
#   line that also shows its value, and no macro the header lacks.
#
# Reads files only: needs no build and no server.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use Test::More;

my $ROOT = abs_path(dirname(__FILE__) . '/..');


sub slurp {
    my ($path) = @_;

    open(my $fh, '<', $path) or die "cannot read $path: $!";
    local $/;
    my $text = <$fh>;
    close($fh);

    return $text;
}


# "a", "b" and "c" are in both lists, or the differences are named.
sub same_set {
    my ($got, $want, $what) = @_;

    my %g = map { $_ => 1 } @$got;
    my %w = map { $_ => 1 } @$want;
    my @missing = sort grep { !$g{$_} } keys %w;
    my @extra = sort grep { !$w{$_} } keys %g;

    ok(!@missing && !@extra, $what)
        or diag('missing: ' . join(' ', @missing) . "\n"
                . 'not in the code: ' . join(' ', @extra));
}


# The anchor GitHub gives a heading: lower case, punctuation dropped,
# spaces as dashes; the second of a name gets "-1", the third "-2".
sub anchor {
    my ($heading, $seen) = @_;

    my $a = lc $heading;
    $a =~ s/[^\w\- ]//g;
    $a =~ tr/ /-/;

    my $n = $seen->{$a}++;

    return $n ? "$a-$n" : $a;
}


# ------------------------------------------------ the module's sources ---

my %CONTEXT = (
    NGX_HTTP_MAIN_CONF => 'http',
    NGX_HTTP_SRV_CONF  => 'server',
    NGX_HTTP_LOC_CONF  => 'location',
    NGX_HTTP_UPS_CONF  => 'upstream',
    NGX_HTTP_SIF_CONF  => 'if in server',
    NGX_HTTP_LIF_CONF  => 'if in location',
);

my (%directive, %variable, $tables, $nulls);

for my $file (sort glob("$ROOT/ngx_commerce_module/*.c")) {
    my $src = slurp($file);
    my $name = $file =~ s{.*/}{}r;

    $src =~ s{/\*.*?\*/}{}gs;

    $nulls += () = $src =~ /\bngx_null_command\b/g;

    # static ngx_command_t  ngx_http_..._commands[] = { ... ngx_null_command
    while ($src =~ /ngx_command_t\s+\w+\s*\[\s*\]\s*=\s*\{(.*?)
                    \bngx_null_command\b/gsx)
    {
        my $table = $1;
        $tables++;

        while ($table =~ /\{\s*ngx_string\(\s*"([^"]+)"\s*\)\s*,
                          \s*([^,]+?)\s*,/gsx)
        {
            my ($cmd, $flags) = ($1, $2);
            my @ctx = grep { defined } map { $CONTEXT{$_} }
                      split /\s*\|\s*/, $flags;

            ok(!$directive{$cmd}, "$cmd is declared once")
                if $directive{$cmd};
            $directive{$cmd} = { file => $name, context => \@ctx };
        }
    }

    # static ngx_http_variable_t  ...[] = { ... ngx_http_null_variable
    while ($src =~ /ngx_http_variable_t\s+\w+\s*\[\s*\]\s*=\s*\{(.*?)
                    \bngx_http_null_variable\b/gsx)
    {
        my $table = $1;

        # a prefix variable is documented as $<prefix>name
        while ($table =~ /\{\s*ngx_string\(\s*"([^"]+)"\s*\)([^}]*)\}/g) {
            my ($var, $rest) = ($1, $2);
            $var .= 'name' if $rest =~ /\bNGX_HTTP_VAR_PREFIX\b/;
            $variable{$var} = $name;
        }
    }

    # a single ngx_http_add_variable(cf, &name, ...) of an ngx_str_t name
    my %str;
    $str{$1} = $2
        while $src =~ /ngx_str_t\s+(\w+)\s*=\s*ngx_string\(\s*"([^"]*)"\s*\)/g;

    while ($src =~ /ngx_http_add_variable\(\s*\w+\s*,\s*&\s*(\w+)(\s*->)?/g) {
        my ($var, $member) = ($1, $2);

        next if $member;        # a loop over a table parsed above

        if (defined $str{$var}) {
            $variable{$str{$var}} = $name;

        } else {
            fail("$name: the variable name $var is an ngx_str_t with "
                 . "ngx_string(\"...\") in the same file");
        }
    }
}

ok($tables, 'the module has command tables');
is($tables, $nulls, 'every ngx_null_command ends a parsed command table');


# ---------------------------------------------------- docs/directives.md ---

my (%doc, %docvar);

{
    my ($entry, %seen, $fence);

    for my $line (split /\n/, slurp("$ROOT/docs/directives.md")) {

        $fence = !$fence if $line =~ /^```/;
        next if $fence || $line =~ /^```/;

        if ($line =~ /^(#+) (.*?)\s*$/) {
            my $anchor = anchor($2, \%seen);

            undef $entry;
            next unless $1 eq '###' && $2 =~ /^(\$?)([a-z][a-z0-9_]*)$/;

            my $table = $1 ? \%docvar : \%doc;

            ok(!$table->{$2}, "docs/directives.md: $1$2 documented once")
                if $table->{$2};

            $entry = $table->{$2} = { lines => [], anchor => $anchor };
            next;
        }

        push @{ $entry->{lines} }, $line if $entry;
    }
}

same_set([keys %doc], [keys %directive],
         'docs/directives.md documents every directive, and only those');
same_set([keys %docvar], [keys %variable],
         'docs/directives.md documents every variable, and only those');

for my $cmd (sort keys %doc) {
    my (%field, @ctx);

    for (@{ $doc{$cmd}{lines} }) {
        $field{$1} = $2 if /^- \*\*(\w+):\*\* (.+?)\s*$/;
    }

    like($field{Syntax} // '', qr/^`\Q$cmd\E[ ;]/, "$cmd: Syntax");

    ok(defined $field{Default}
       && ($field{Default} eq "\x{e2}\x{80}\x{94}"
           || $field{Default} =~ /^`\Q$cmd\E [^`]+;`$/),
       "$cmd: Default is \x{e2}\x{80}\x{94} or `$cmd value;`")
        or diag('Default: ' . ($field{Default} // 'missing'));

    next unless $directive{$cmd};

    @ctx = split /\s*,\s*/, $field{Context} // '';
    same_set(\@ctx, $directive{$cmd}{context},
             "$cmd: Context is where $directive{$cmd}{file} allows it");
}

for my $var (sort keys %docvar) {
    ok(grep({ /\S/ } @{ $docvar{$var}{lines} }), "\$$var: described");
}


# ------------------------------------------- README.md's directive index ---

{
    my $readme = slurp("$ROOT/README.md");
    my ($index) = $readme =~ /^## Directives\n(.*?)(?=^## |\z)/ms;
    my (@cmds, @vars);

    ok(defined $index, 'README.md has a "## Directives" section');
    $index //= '';

    while ($index =~ /\[`(\$?)(commerce_\w+)`\]\(docs\/directives\.md#([^)]*)\)/g)
    {
        my ($dollar, $name, $anchor) = ($1, $2, $3);
        my $entry = $dollar ? $docvar{$name} : $doc{$name};

        is($anchor, $entry ? $entry->{anchor} : $name,
           "README.md: $dollar$name links to its entry");
        push @{ $dollar ? \@vars : \@cmds }, $name;
    }

    same_set(\@cmds, [keys %directive],
             'README.md lists every directive, and only those');
    same_set(\@vars, [keys %variable],
             'README.md lists every variable, and only those');
}


# ----------------------------------------------------- docs/contract.md ---

{
    my (%macro, %seen);
    my $contract = slurp("$ROOT/docs/contract.md");

    for (split /\n/, slurp("$ROOT/common/commerce_contract.h")) {
        # object-like macros with a value; COMMERCE_LEN(lit) is a helper
        next unless /^#define\s+(COMMERCE_\w+)\s+(\S.*?)\s*$/;

        my ($name, $value) = ($1, $2);
        $macro{$name} = $value =~ s/^"(.*)"$/$1/r;
    }

    ok(scalar(keys %macro), 'common/commerce_contract.h defines names');

    for my $line (split /\n/, $contract) {
        while ($line =~ /`(COMMERCE_\w+)`/g) {
            my $m = $1;

            $seen{$m} = 1 if defined $macro{$m}
                             && index($line, $macro{$m}) >= 0;
            $seen{$m} //= 0;
        }
    }

    same_set([keys %seen], [keys %macro],
             'docs/contract.md names every macro of commerce_contract.h, '
             . 'and only those');

    for my $m (sort keys %macro) {
        ok($seen{$m}, "docs/contract.md: `$m` with its value "
                      . "\"$macro{$m}\" on the same line")
            if exists $seen{$m};
    }
}


# ------------------------------------------- links between the documents ---

# Every relative link of README.md and docs/*.md names a file that exists,
# and an anchor its headings have. docs/workers.md is generated from the
# workers' --help by its own script: links to it are checked once it is
# there.

{
    my %anchors;

    my $anchors_of = sub {
        my ($file) = @_;

        return $anchors{$file} if $anchors{$file};

        my (%seen, %set, $fence);

        for (split /\n/, slurp($file)) {
            $fence = !$fence if /^```/;
            $set{ anchor($1, \%seen) } = 1 if !$fence && /^#+ (.*?)\s*$/;
        }

        return $anchors{$file} = \%set;
    };

    for my $doc ("$ROOT/README.md", sort glob("$ROOT/docs/*.md")) {
        my $text = slurp($doc);
        my $name = $doc =~ s{^\Q$ROOT\E/}{}r;
        my $dir = dirname($doc);

        $text =~ s/^```.*?^```//gms;

        while ($text =~ /\]\(([^)\s]+)\)/g) {
            my $link = $1;

            next if $link =~ m{^[a-z]+:};

            my ($path, $frag) = $link =~ /^([^#]*)(?:#(.*))?$/;
            my $file = $path eq '' ? $doc : abs_path("$dir/$path");

            if (!defined $file || !-e $file) {
                next if $path =~ m{(?:^|/)workers\.md$};
                fail("$name: $link names a file that exists");
                next;
            }

            next unless defined $frag && -f $file && $file =~ /\.md$/;

            ok($anchors_of->($file)->{$frag},
               "$name: $link names a heading of its file");
        }
    }
}


done_testing();
