package Soak::Traffic;

# The soak's load: forked clients, each sending a share of a steady rate
# of requests drawn from the traffic table below, and retrying a webhook
# that was not acknowledged the way a provider does (backoff, Retry-After,
# a new signature per attempt) until it is, or until told to stop. Every
# attempt is one line of the client's log, which the checks read:
#
#   time  generator  source  delivery-id  status  reason  ms  ref
#
# A generator: name, weight (share of the requests), kind (webhook or
# read), and
#   webhook: source (the location), scheme (Soak::Sign), verify (how
#            the checks find an acknowledged delivery: 'event_store' for
#            the projector's sources, 'topic' for commerce.webhooks),
#            body(ctx, delivery id, n) -> (body, ref); ref is what the
#            delivery changes, for the checks ('store/sku' of a stock
#            adjustment);
#   read:    path(ctx) -> the URL path.
# Later issues add their traffic as entries (and their checks in
# Soak::Checks).

use strict;
use warnings;

use HTTP::Tiny;
use POSIX qw(_exit);
use Time::HiRes qw(sleep time);

use Soak::Sign;

sub pick { return $_[0][int rand @{ $_[0] }] }

our @TABLE = (
    { name => 'canonical', weight => 30, kind => 'webhook',
      source => 'canonical', scheme => 'standard', verify => 'event_store',
      # +1 of a stock level that exists: the checks expect on_hand to
      # have grown by exactly the acknowledged adjustments
      body => sub {
          my ($ctx) = @_;
          my ($store, $sku) = @{ pick($ctx->{stock}) };
          return ('{"commands":[{"type":"stock.adjust","store_id":"'
                  . $store . '","sku":"' . $sku . '","delta":1,'
                  . '"reason":"soak","unit":"each"}]}', "$store/$sku");
      } },
    { name => 'shopify', weight => 10, kind => 'webhook',
      source => 'shopify', scheme => 'shopify', verify => 'event_store',
      # a new product each time: one catalog.item.updated per delivery
      body => sub {
          my ($ctx, $id, $n) = @_;
          my $pid = ($ctx->{client} + 1) * 10_000_000 + $n;
          return ('{"id":' . $pid . ',"title":"soak ' . $pid . '",'
                  . '"vendor":"soak","variants":[]}', "shopify-$pid");
      } },
    map({ my $s = $_;
          { name => $s, weight => 3, kind => 'webhook', source => $s,
            scheme => $s, verify => 'topic',
            body => sub {
                my ($ctx, $id) = @_;
                return ('{"id":"' . $id . '","event_id":"' . $id
                        . '","type":"soak.test","data":{"n":1}}', '-');
            } } } qw(standard stripe github slack hmac)),
    # an acknowledged delivery sent again (providers deliver at least
    # once): 200 duplicate, or 202 if Redis forgot it, applied once anyway
    { name => 'redeliver', weight => 5, kind => 'redeliver' },
    { name => 'catalog_item', weight => 15, kind => 'read',
      path => sub { '/v1/catalog/' . pick($_[0]{items}) } },
    { name => 'catalog_list', weight => 5, kind => 'read',
      path => sub { '/v1/catalog?limit=20' } },
    { name => 'inventory_item', weight => 15, kind => 'read',
      path => sub { my ($st, $sku) = @{ pick($_[0]{stock}) };
                    "/v1/stores/$st/inventory/$sku" } },
    { name => 'inventory_list', weight => 5, kind => 'read',
      path => sub { '/v1/stores/' . pick($_[0]{stores})
                    . '/inventory?count=20' } },
);

our %BY_NAME = map { $_->{name} => $_ } @TABLE;

# Webhook answers that mean "try again later" to a provider.
our %RETRY = map { $_ => 1 } (409, 429, 500, 502, 503, 504, 599);


sub secret {
    my ($run, $source) = @_;
    open my $fh, '<', "$run/secrets/$source" or die "$source secret: $!\n";
    my ($s) = grep { !/^#/ && /\S/ } <$fh>;
    chomp $s;
    return $s;
}


sub draw {
    my ($total, @t) = (0, @TABLE);
    $total += $_->{weight} for @t;
    my $r = rand $total;
    for (@t) { return $_ if ($r -= $_->{weight}) < 0 }
    return $t[-1];
}


# The client's loop (in a forked process). ctx: client (number), base
# (URL), run (stack dir), log (file), rate (requests/s of this client),
# stock ([store, sku] ...), items, stores, prefix (of delivery ids).
# SIGUSR1: no new requests, finish the retries; SIGTERM: exit now.
sub client {
    my ($ctx) = @_;
    my ($draining, $n) = (0, 0);
    my (@pending, @acked);

    $SIG{USR1} = sub { $draining = 1 };
    $SIG{TERM} = sub { _exit(0) };
    srand($$ ^ time);

    my $ua = HTTP::Tiny->new(timeout => 15, keep_alive => 1);
    my %secret = map { $_->{source} => secret($ctx->{run}, $_->{source}) }
                 grep { $_->{kind} eq 'webhook' } @TABLE;
    open my $log, '>>', $ctx->{log} or die "$ctx->{log}: $!\n";
    $log->autoflush(1);

    my $interval = 1 / $ctx->{rate};
    my $next = time;

    while (1) {
        my $now = time;
        my ($due) = grep { $_->{at} <= $now } @pending;
        if (!$due && $draining) {
            last unless @pending;
            sleep 0.1;
            next;
        }
        if (!$due) {
            sleep($next - $now) if $next > $now;
            $next = ($next + $interval < time - 1) ? time : $next + $interval;
            my $g = draw();
            if ($g->{kind} eq 'read') {
                my $path = $g->{path}->($ctx);
                my $t0 = time;
                my $r = $ua->get("$ctx->{base}$path");
                record($log, $g->{name}, '-', '-', $r, $t0, $path);
                next;
            }
            if ($g->{kind} eq 'redeliver') {
                next unless @acked;
                $due = { %{ pick(\@acked) }, gen => 'redeliver', tries => 0 };
            } else {
                my $id = sprintf '%s-c%d-%d', $ctx->{prefix}, $ctx->{client},
                                 ++$n;
                my ($body, $ref) = $g->{body}->($ctx, $id, $n);
                $due = { gen => $g->{name}, g => $g, id => $id,
                         body => $body, ref => $ref, tries => 0 };
            }
        } else {
            @pending = grep { $_ != $due } @pending;
        }

        my $g = $due->{g};
        my %h = Soak::Sign::headers($g->{scheme}, $secret{$g->{source}},
                                    $due->{id}, $due->{body});
        my $t0 = time;
        my $r = $ua->post("$ctx->{base}/v1/webhooks/$g->{source}",
                          { headers => \%h, content => $due->{body} });
        record($log, $due->{gen}, $g->{source}, $due->{id}, $r, $t0,
               $due->{ref});
        $due->{tries}++;
        if ($r->{status} == 202 || $r->{status} == 200) {
            push @acked, $due if $due->{gen} ne 'redeliver';
            shift @acked if @acked > 500;
        } elsif ($RETRY{$r->{status}}) {
            my $after = $r->{headers}{'retry-after'} // 0;
            $after = 0 unless $after =~ /^\d+$/;
            my $backoff = 2 ** ($due->{tries} - 1);
            $backoff = $after if $after > $backoff;
            $backoff = 16 if $backoff > 16;
            $due->{at} = time + $backoff;
            push @pending, $due;
        }
        # anything else is a permanent refusal: the checks report it
    }
    close $log;
    _exit(0);
}


sub record {
    my ($log, $gen, $source, $id, $r, $t0, $ref) = @_;
    my $reason = '-';
    if ($r->{status} == 599) {
        ($reason) = ($r->{content} // '') =~ /^(\S+(?:\s+\S+){0,3})/;
        $reason = 'client: ' . ($reason // 'error');
    } elsif ($r->{status} >= 300) {
        ($reason) = ($r->{content} // '') =~ /"error"\s*:\s*"([^"]+)"/;
        $reason //= 'html';
    }
    $reason =~ s/[\t\n]/ /g;
    printf $log "%.3f\t%s\t%s\t%s\t%d\t%s\t%.0f\t%s\n", $t0, $gen, $source,
           $id, $r->{status}, $reason, (time - $t0) * 1000, $ref // '-';
}

1;
