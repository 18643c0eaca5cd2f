package Soak::Checks;

# What the soak verifies once the faults stopped, every retry was answered
# and the projector caught up. A check: name, what it promises, and
# run($ctx) -> (ok, detail); ok undef means "for information". ctx: st
# (Soak::Stack), d (deliveries: "source id" -> {gen, source, id, ref,
# statuses [..], acked}), req (generator -> status -> count), base_stock
# ("store/sku" -> on_hand before the load), prefix (of the soak's delivery
# ids), san_dir (sanitizer log_path directory), logs (files to scan).
# Later issues add their checks here.

use strict;
use warnings;

use Soak::Traffic;

sub verify_of { $Soak::Traffic::BY_NAME{ $_[0]{gen} }{verify} // '' }

sub acked { my ($ctx, $v) = @_;
            grep { $_->{acked} && verify_of($_) eq $v } values %{ $ctx->{d} } }

sub sample { my @l = sort @_; return join(' ', @l[0 .. ($#l < 4 ? $#l : 4)])
             . (@l > 5 ? ' ...' : '') }

# "label: N (a few of them)"
sub listed {
    my ($label, @ids) = @_;
    return "$label: " . @ids . (@ids ? ' (' . sample(@ids) . ')' : '');
}

sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or return '';
    local $/;
    return <$fh> // '';
}

# The soak's events in the event store: "source id" -> [event keys].
sub stored_events {
    my ($ctx) = @_;
    my %ev;
    for my $r ($ctx->{st}->sql(
            "SELECT metadata->>'source', metadata->>'delivery_id',"
            . " aggregate_type || ':' || aggregate_id || ':' || event_type"
            . " FROM event_store WHERE metadata->>'delivery_id' LIKE"
            . " '$ctx->{prefix}-%'")) {
        push @{ $ev{"$r->[0] $r->[1]"} }, $r->[2];
    }
    return \%ev;
}

our @TABLE = (
    { name => 'webhooks_answered',
      what => 'every delivery was acknowledged (202, or 200 duplicate) '
              . 'once the faults stopped: none given up',
      run => sub {
          my ($ctx) = @_;
          my @open = grep { !$_->{acked} } values %{ $ctx->{d} };
          my %last;
          $last{ $_->{statuses}[-1] }++ for @open;
          return (!@open, @open ? scalar(@open) . ' never acknowledged, '
                  . 'last answers: ' . join(', ', map { "$_ x$last{$_}" }
                  sort keys %last) . '; e.g. ' . sample(map { $_->{id} } @open)
                  : scalar(keys %{ $ctx->{d} })
                    . ' deliveries, all acknowledged');
      } },
    { name => 'no_unexpected_status',
      what => 'webhooks: only 200/202 and retryable answers (409, 429, 503, '
              . 'client timeouts); reads: 200, 503, 504 (404 only while'
              . ' a killed Redis is rebuilt)',
      run => sub {
          my ($ctx) = @_;
          my %ok_read = map { $_ => 1 } (200, 503, 504);
          my %ok_hook = map { $_ => 1 } (200, 202, 409, 429, 503, 599);
          my (@bad, @excused);
          for my $g (sort keys %{ $ctx->{req} }) {
              my $read = ($Soak::Traffic::BY_NAME{$g}{kind} // '') eq 'read';
              for my $s (sort keys %{ $ctx->{req}{$g} }) {
                  next if $read ? $ok_read{$s} : $ok_hook{$s};
                  # a read of a key Redis lost, before the rebuild put
                  # it back
                  my $n = $ctx->{req}{$g}{$s};
                  if ($read && $s == 404
                      && ($ctx->{in_fault}{$g}{404}{redis_kill} // 0) == $n)
                  {
                      push @excused, "$g 404 x$n";
                      next;
                  }
                  push @bad, "$g $s x$ctx->{req}{$g}{$s} ("
                      . join(',', sort keys %{ $ctx->{reasons}{$g}{$s} }) . ')';
              }
          }
          return (!@bad, (@bad ? join('; ', @bad) : 'none')
                  . (@excused ? ' (while Redis was restarted empty and'
                     . ' rebuilt: ' . join(', ', @excused) . ')' : ''));
      } },
    { name => 'event_store_exactly_once',
      what => 'each acknowledged delivery of the projector\'s sources is in '
              . 'the event store, each of its events once',
      run => sub {
          my ($ctx) = @_;
          my $ev = $ctx->{events} //= stored_events($ctx);
          my (@missing, @twice);
          for my $d (acked($ctx, 'event_store')) {
              my $e = $ev->{"$d->{source} $d->{id}"};
              push @missing, $d->{id} unless $e && @$e;
              my %n;
              push @twice, $d->{id} if grep { ++$n{$_} == 2 } @{ $e // [] };
          }
          my $n = () = acked($ctx, 'event_store');
          return (!@missing && !@twice,
                  join('; ', "$n acknowledged", listed('missing', @missing),
                       listed('duplicated events', @twice)));
      } },
    { name => 'event_store_nothing_else',
      what => 'no event of a delivery that was never acknowledged, nor of '
              . 'an id the soak did not send',
      run => sub {
          my ($ctx) = @_;
          my $ev = $ctx->{events} //= stored_events($ctx);
          my (@unacked, @unknown);
          for my $k (keys %$ev) {
              my $d = $ctx->{d}{$k};
              push @unknown, $k unless $d;
              push @unacked, $k if $d && !$d->{acked};
          }
          return (!@unacked && !@unknown,
                  join('; ', listed('unacknowledged in the store', @unacked),
                       listed('unknown', @unknown)));
      } },
    { name => 'stock_exact',
      what => 'each stock level grew by exactly its acknowledged +1 '
              . 'adjustments (applied once, none lost)',
      run => sub {
          my ($ctx) = @_;
          my %want = %{ $ctx->{base_stock} };
          $want{ $_->{ref} }++ for grep { $_->{gen} eq 'canonical' }
                                   acked($ctx, 'event_store');
          my %have = map { ("$_->[0]/$_->[1]" => $_->[2]) } $ctx->{st}->sql(
              'SELECT store_id, sku, on_hand FROM stock_levels');
          my @off = map { "$_ want $want{$_} have " . ($have{$_} // 'none') }
                    grep { ($have{$_} // -1) != $want{$_} } sort keys %want;
          return (!@off, @off ? scalar(@off) . ' levels off: '
                  . join('; ', @off[0 .. ($#off < 4 ? $#off : 4)])
                  : scalar(keys %want) . ' levels exact');
      } },
    { name => 'webhooks_topic_complete',
      what => 'each acknowledged delivery of the other sources is in '
              . 'commerce.webhooks (copies after a lost Redis dedup mark '
              . 'are counted, not refused)',
      run => sub {
          my ($ctx) = @_;
          my %n;
          for my $h ($ctx->{st}->topic_headers('commerce.webhooks')) {
              my $id = $h->{delivery_id} // next;
              next unless index($id, "$ctx->{prefix}-") == 0;
              $n{"$h->{source} $id"}++;
          }
          my @missing = map { $_->{id} }
                        grep { !$n{"$_->{source} $_->{id}"} }
                        acked($ctx, 'topic');
          my @unknown = grep { !$ctx->{d}{$_} || !$ctx->{d}{$_}{acked} }
                        keys %n;
          my @copies = grep { $n{$_} > 1 } keys %n;
          # a copy after a 503 (the first try was in Kafka after all), or
          # after a redelivery got 202 (Redis had lost the dedup mark)
          my $refused = grep {
              grep { $_ != 200 && $_ != 202 } @{ $ctx->{d}{$_}{statuses} // [] }
          } @copies;
          my $acked = () = acked($ctx, 'topic');
          return (!@missing && !@unknown,
                  join('; ', "$acked acknowledged", listed('missing', @missing),
                       listed('unacknowledged or unknown', @unknown),
                       "published more than once: " . @copies
                       . " ($refused of them answered 503/409/timeout once)"));
      } },
    { name => 'read_model_equals_rebuild',
      what => 'Redis (cat:*, inv:*) equals commerce-projector --rebuild '
              . 'into an empty redis-server',
      run => sub { $_[0]{rebuild}->() } },
    { name => 'outbox_empty',
      what => 'the projector\'s outbox is empty',
      run => sub {
          my $n = $_[0]{st}->sql_value('SELECT count(*) FROM outbox');
          return ($n == 0, "$n rows");
      } },
    { name => 'no_dead_letters',
      what => 'none of the soak\'s (valid) deliveries was dead-lettered',
      run => sub {
          my ($ctx) = @_;
          my @r = $ctx->{st}->sql("SELECT reason, count(*) FROM dead_letters"
              . " WHERE delivery_id LIKE '$ctx->{prefix}-%' GROUP BY 1");
          return (!@r, @r ? join(', ', map { "$_->[0] x$_->[1]" } @r)
                          : 'none');
      } },
    { name => 'nginx_log_clean',
      what => 'no [alert], [crit] or [emerg] in the nginx error log, no'
              . ' worker exit with a non-zero code',
      run => sub {
          my ($ctx) = @_;
          my @l = grep { /\[(alert|crit|emerg)\]|exited with code [1-9]/ }
                  split /\n/, slurp($ctx->{st}->run . '/logs/nginx-error.log');
          return (!@l, @l ? scalar(@l) . " lines, first: $l[0]" : 'none');
      } },
    { name => 'no_sanitizer_report',
      what => 'no AddressSanitizer/UBSan report (a SAN=1 run: nginx, '
              . 'projector, devbroker)',
      run => sub {
          my ($ctx) = @_;
          my @files = glob("$ctx->{san_dir}/*");
          my @hits = grep {
              slurp($_) =~ /AddressSanitizer|LeakSanitizer|runtime error:/
          } map { $ctx->{st}->run . "/logs/$_" }
            qw(nginx-error.log projector.log devbroker.log);
          my $ok = !@files && !@hits;
          return ($ok, !$ctx->{san} ? 'not a sanitizer build (SAN=1)'
                       . ($ok ? '' : ': reports found anyway')
                  : $ok ? 'none' : join(' ', @files, @hits));
      } },
    { name => 'services_running',
      what => 'every service still runs at the end (stack.sh status)',
      run => sub {
          my ($rc, $out) = $_[0]{st}->sh('status');
          $out =~ s/\s+/ /g;
          return ($rc == 0, $rc == 0 ? 'all running' : $out);
      } },
    # For information (no pass or fail: timings on a shared machine): how
    # the ingress answers while things are broken.
    { name => 'webhook_503_time',
      what => 'how long the webhook 503s took (commerce_kafka_delivery_timeout'
              . ' is 5s in conf/nginx.conf)',
      run => sub {
          my @ms = sort { $a <=> $b } map { $_->[3] }
                   grep { $_->[2] == 503 } @{ $_[0]{answers} };
          return (undef, 'none') unless @ms;
          my $slow = grep { $_ > 5000 } @ms;
          return (undef, sprintf('%d answers, median %d ms, max %d ms, %d over'
                                 . ' 5 s', scalar @ms, $ms[$#ms / 2], $ms[-1],
                                 $slow));
      } },
    { name => 'webhook_409_after_fault',
      what => '409 delivery_in_progress answers, and how long after the end'
              . ' of the Redis freeze before it the last one came',
      run => sub {
          my ($ctx) = @_;
          my ($n, $lag, $after) = (0, 0, '-');
          my @freezes = grep { $_->{name} eq 'redis_freeze' }
                        @{ $ctx->{windows} };
          for my $x (grep { $_->[2] == 409 } @{ $ctx->{answers} }) {
              $n++;
              my ($w) = sort { $b->{from} <=> $a->{from} }
                        grep { $_->{from} <= $x->[0] } @freezes;
              next unless $w;
              my $l = $x->[0] - ($w->{to} // $w->{from});
              ($lag, $after) = ($l, $w->{name}) if $l > $lag;
          }
          return (undef, 'none') unless $n;
          return (undef, sprintf('%d answers; the last %.1f s after the end'
                                 . ' of a %s', $n, $lag, $after));
      } },
);

1;
