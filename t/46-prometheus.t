#!/usr/bin/perl

# conf/prometheus/ and conf/grafana/: the stack's scrape configuration as
# scripts/stack.sh renders it passes `promtool check config`; the alert
# rules pass `promtool check rules` and their unit tests (`promtool test
# rules`), which test every alert; every metric the rules and the Grafana
# dashboard query is one the module or a worker exports (its name is in
# their sources); the dashboard is valid JSON whose panels all query.

use strict;
use warnings;

use File::Temp qw(tempdir);
use JSON::PP;
use Test::More;

use lib 't/lib';
use CommerceTest;

my $repo = $CommerceTest::REPO;
my $conf = "$repo/conf/prometheus";
my $promtool = '/usr/bin/promtool';

plan skip_all => "no $promtool (Debian package prometheus: make deps)"
    unless -x $promtool;

sub slurp { CommerceTest->slurp($_[0]) }

sub promtool {
    my (@args) = @_;
    my $out = `'$promtool' @args 2>&1`;
    return ($? >> 8, $out);
}

# --- the scrape configuration, rendered as stack.sh renders it ------------

my $dir = tempdir(CLEANUP => 1);
my $yml = slurp("$conf/prometheus.yml");
my %at = (CONF => "$repo/conf", HOST => '127.0.0.1', HTTP_PORT => 8080,
          METRICS_PORT => 9464, SIM_METRICS_PORT => 9465,
          PROMETHEUS_PORT => 9090);
$yml =~ s/\@(\w+)\@/$at{$1} \/\/ "\@$1\@"/ge;
unlike($yml, qr/\@\w+\@/, 'every placeholder is one stack.sh fills');
open my $fh, '>', "$dir/prometheus.yml" or die;
print $fh $yml;
close $fh;

my ($rc, $out) = promtool('check', 'config', "$dir/prometheus.yml");
is($rc, 0, 'promtool check config') or diag($out);
like($out, qr/SUCCESS: 1 rule files found/, 'with the alert rules');
like($yml, qr/job_name: $_\b/, "scrape job $_") for qw(nginx projector);

# --- the alert rules and their tests ---------------------------------------

($rc, $out) = promtool('check', 'rules', "$conf/commerce-alerts.yml");
is($rc, 0, 'promtool check rules') or diag($out);

($rc, $out) = promtool('test', 'rules', "$conf/commerce-alerts.test.yml");
is($rc, 0, 'promtool test rules: every case passes') or diag($out);

my $rules = slurp("$conf/commerce-alerts.yml");
my $tests = slurp("$conf/commerce-alerts.test.yml");
my @alerts = $rules =~ /^\s*- alert: (\w+)$/mg;
my %tested = map { $_ => 1 } $tests =~ /^\s*alertname: (\w+)$/mg;
my %firing;
while ($tests =~ /alertname: (\w+)\n\s*exp_alerts:\n\s*- exp_labels/g) {
    $firing{$1} = 1;
}
is_deeply([grep { !$tested{$_} } @alerts], [], 'every alert has test cases');
is_deeply([grep { !$firing{$_} } @alerts], [],
          'every alert has a case where it fires');
for my $a (qw(CommerceOutboxStuck CommerceConsumerLag CommerceDeadLetterRate
              CommerceBreakerOpen CommerceWebhook5xxRate)) {
    ok((grep { $_ eq $a } @alerts), "alert $a");
}

# --- the metrics they query exist -----------------------------------------

# The names the module and the workers register (string literals in
# their sources), and Prometheus' own "up".
my %exported = (up => 1);
for my $f (glob("$repo/ngx_commerce_module/*.c"), glob("$repo/workers/*/*.c")) {
    $exported{$_} = 1
        for slurp($f) =~ /"((?:commerce|projector|process)_[a-z_]+)"/g;
}

# Metric names in a PromQL expression: identifiers that are not functions,
# keywords, label names (in {} and by/without/on/ignoring lists) or
# template variables; a histogram's series are its name with a suffix.
sub metric_names {
    my ($e) = @_;
    my %n;
    $e =~ s/"(?:[^"\\]|\\.)*"//g;
    $e =~ s/\{[^}]*\}//g;
    $e =~ s/\[[^\]]*\]//g;
    $e =~ s/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)//g;
    $e =~ s/\$\w+//g;
    $e =~ s/\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b//gi;
    while ($e =~ /([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g) {
        my ($id, $call) = ($1, $2);
        next if $call
            || $id =~ /^(?:bool|and|or|unless|offset|inf|nan)$/i;
        $id =~ s/_(?:bucket|sum|count)$// unless $exported{$id};
        $n{$id} = 1;
    }
    return keys %n;
}

# The expr: values of a rules file (one line, or a | block).
sub rule_exprs {
    my ($text) = @_;
    my (@exprs, $block, $indent);
    for my $line (split /\n/, $text) {
        if (defined $block) {
            if ($line =~ /^(\s*)\S/ && length($1) > $indent) {
                $block .= "$line\n";
                next;
            }
            push @exprs, $block;
            undef $block;
        }
        if ($line =~ /^(\s*)expr:\s*(.*)$/) {
            if ($2 eq '|') {
                ($block, $indent) = ('', length $1);
            } else {
                push @exprs, $2;
            }
        }
    }
    push @exprs, $block if defined $block;
    return @exprs;
}

my @rule_exprs = rule_exprs($rules);
is(scalar @rule_exprs, scalar @alerts, 'an expression per alert');
my %unknown;
for my $n (map { metric_names($_) } @rule_exprs) {
    $unknown{$n} = 1 unless $exported{$n};
}
is(join(' ', sort keys %unknown), '', 'the rules query exported metrics only');

# --- the Grafana dashboard --------------------------------------------------

my $dash = eval { decode_json(slurp("$repo/conf/grafana/commerce-edge.json")) };
ok($dash, 'the dashboard is valid JSON') or diag($@);
is($dash->{uid}, 'commerce-edge', 'dashboard uid');
is((grep { $_->{name} eq 'datasource' && $_->{type} eq 'datasource' }
    @{ $dash->{templating}{list} }), 1, 'a Prometheus data source variable');

my @panels = grep { $_->{type} ne 'row' } @{ $dash->{panels} };
my %ids;
$ids{$_->{id}}++ for @{ $dash->{panels} };
is((grep { $_ > 1 } values %ids), 0, 'panel ids are unique');
is((grep { !@{ $_->{targets} // [] } } @panels), 0, 'every panel queries');

my (%queried, %unknown_d);
for my $p (@panels) {
    for my $t (@{ $p->{targets} }) {
        $queried{$_} = 1 for metric_names($t->{expr});
    }
}
$exported{$_} || ($unknown_d{$_} = 1) for keys %queried;
is(join(' ', sort keys %unknown_d), '',
   'the dashboard queries exported metrics only');
for my $n (qw(projector_consumer_lag projector_outbox_backlog_rows
              projector_outbox_oldest_age_seconds process_cpu_seconds_total
              commerce_http_requests_total commerce_breaker_state)) {
    ok($queried{$n}, "the dashboard shows $n");
}

done_testing();
