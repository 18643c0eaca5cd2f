#!/usr/bin/perl
# commerce_webhook_signature: each provider's scheme verified through real
# nginx and Kafka.  A verified webhook is published byte for byte with the
# signature_scheme header; a forged, tampered, unsigned, garbled or stale
# one is refused (401/400 JSON) and never published.  Key rotation with
# several secrets, secret files re-read on reload, the providers' published
# vectors end to end, the JSON check, keepalive after an early refusal, and
# no secret in the logs.
#
# Requests are signed here with Digest::SHA, independently of the module.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(hmac_sha256 hmac_sha256_hex hmac_sha256_base64
                   hmac_sha512_hex hmac_sha512_base64);
use JSON::PP;
use MIME::Base64 qw(decode_base64 encode_base64);
use Test::More;
use Time::HiRes qw(sleep time);

use CommerceBroker;
use CommerceTest;

CommerceBroker->skip_unless_available;

my $t = CommerceTest->new;
my $broker = CommerceBroker->new($t, consume_timeout => 60);
my $bs = $broker->bootstrap;
my $dir = $t->dir;

# ------------------------------------------------------------ schemes ---

# Secrets are random per run so that a grep of the logs cannot match by
# chance.  Standard Webhooks secrets are whsec_<base64>; the key is the
# decoded bytes.  Every other provider keys with the secret as written.
my $tag = sprintf '%08x', int rand 0xffffffff;

my %secret = (
    standard    => 'whsec_' . encode_base64("std-key-$tag-0123456789", ''),
    stripe      => "whsec_stripe$tag",
    shopify     => "shpss_$tag",
    github      => "gh-$tag-secret",
    slack       => "slack$tag" . 'abcdef',
    woocommerce => "wc_$tag",
    razorpay    => "rzp_$tag",
    hmac        => "generic-$tag",
);

my %wrong = (
    standard    => 'whsec_' . encode_base64("not-the-key-$tag", ''),
    stripe      => "whsec_other$tag",
    shopify     => "shpss_other$tag",
    github      => "gh-other-$tag",
    slack       => "slackother$tag",
    woocommerce => "wc_other$tag",
    razorpay    => "rzp_other$tag",
    hmac        => "generic-other-$tag",
);

# the signature header of each scheme (absent from "missing" requests)
my %sig_header = (
    standard    => 'webhook-signature',
    stripe      => 'Stripe-Signature',
    shopify     => 'X-Shopify-Hmac-Sha256',
    github      => 'X-Hub-Signature-256',
    slack       => 'X-Slack-Signature',
    woocommerce => 'X-WC-Webhook-Signature',
    razorpay    => 'X-Razorpay-Signature',
    hmac        => 'X-Signature',
);

# a value each scheme must refuse as garbled (400 malformed_signature)
my %garbled = (
    standard    => 'v1,***not-base64***',
    stripe      => 'garbage-without-equals',
    shopify     => 'not base64!',
    github      => 'sha1=0123456789abcdef0123456789abcdef01234567',
    slack       => 'v0=xyz',
    woocommerce => 'abc',
    razorpay    => 'xyz',
    hmac        => hmac_sha512_hex('x', 'y'),      # no "sha512=" prefix
);

my @schemes = qw(standard stripe shopify github slack woocommerce razorpay
                 hmac);
my %timestamped = map { $_ => 1 } qw(standard stripe slack);

# Digest::SHA's base64 is unpadded
sub pad64 {
    my ($s) = @_;
    return $s . '=' x ((4 - length($s) % 4) % 4);
}


# The headers of a request of the scheme, signed with the secret.
# Options: ts (default now), id (Standard Webhooks).
sub sign {
    my ($scheme, $secret, $body, %o) = @_;

    my $ts = $o{ts} // time;
    $ts = int $ts;

    if ($scheme eq 'standard') {
        my $id = $o{id} // "msg_$tag" . int(rand 1e9);
        (my $b64 = $secret) =~ s/^whsec_//;
        my $key = decode_base64($b64);
        return ('webhook-id' => $id, 'webhook-timestamp' => $ts,
                'webhook-signature' =>
                    'v1,' . pad64(hmac_sha256_base64("$id.$ts.$body", $key)));
    }

    if ($scheme eq 'stripe') {
        return ('Stripe-Signature' =>
                "t=$ts,v1=" . hmac_sha256_hex("$ts.$body", $secret));
    }

    if ($scheme eq 'slack') {
        return ('X-Slack-Request-Timestamp' => $ts,
                'X-Slack-Signature' =>
                    'v0=' . hmac_sha256_hex("v0:$ts:$body", $secret));
    }

    return ('X-Shopify-Hmac-Sha256' =>
                pad64(hmac_sha256_base64($body, $secret)))
        if $scheme eq 'shopify';
    return ('X-Hub-Signature-256' =>
                'sha256=' . hmac_sha256_hex($body, $secret))
        if $scheme eq 'github';
    return ('X-WC-Webhook-Signature' =>
                pad64(hmac_sha256_base64($body, $secret)))
        if $scheme eq 'woocommerce';
    return ('X-Razorpay-Signature' => hmac_sha256_hex($body, $secret))
        if $scheme eq 'razorpay';
    return ('X-Signature' =>
                'sha512=' . pad64(hmac_sha512_base64($body, $secret)))
        if $scheme eq 'hmac';

    die "unknown scheme $scheme";
}

# ---------------------------------------------------- nginx -t errors ---

sub location_conf {
    my ($loc) = @_;
    return <<"EOF";
    commerce_kafka_brokers $bs;

    server {
        listen 127.0.0.1:%%PORT_HTTP%%;
        location = /wh {
            commerce_webhook shop;
$loc
        }
    }
EOF
}

my @conf_outputs;

sub conf_error {
    my ($name, $loc) = @_;
    $t->write_nginx_conf(location_conf($loc), name => $name);
    my ($ok, $out) = $t->nginx_test_ok($name);
    push @conf_outputs, $out;
    return $ok ? '' : $out;
}

sub conf_ok {
    my ($name, $loc) = @_;
    $t->write_nginx_conf(location_conf($loc), name => $name);
    my ($ok, $out) = $t->nginx_test_ok($name);
    push @conf_outputs, $out;
    diag($out) unless $ok;
    return $ok;
}

like(conf_error('no_secret', 'commerce_webhook_signature github;'),
     qr/needs "commerce_webhook_secret" or "commerce_webhook_secret_file"/,
     'a scheme without a secret fails nginx -t');

like(conf_error('no_file',
                "commerce_webhook_signature github;\n"
                . "commerce_webhook_secret_file $dir/no-such-file;"),
     qr/cannot open "\Q$dir\E\/no-such-file"/,
     'a missing secret file fails nginx -t, naming it');

open my $efh, '>', "$dir/empty-secrets" or die;
close $efh;
like(conf_error('empty_file',
                "commerce_webhook_signature github;\n"
                . "commerce_webhook_secret_file $dir/empty-secrets;"),
     qr/empty-secrets" holds no secret/,
     'an empty secret file fails nginx -t');

open $efh, '>', "$dir/comment-secrets" or die;
print {$efh} "# only a comment\n\n   \n#another\n";
close $efh;
like(conf_error('comment_file',
                "commerce_webhook_signature github;\n"
                . "commerce_webhook_secret_file $dir/comment-secrets;"),
     qr/comment-secrets" holds no secret/,
     'a secret file with only comments and blank lines fails nginx -t');

like(conf_error('unknown_scheme',
                "commerce_webhook_signature stripes;\n"
                . "commerce_webhook_secret x;"),
     qr/unknown webhook signature scheme "stripes"/,
     'an unknown scheme fails nginx -t, naming it');

like(conf_error('hmac_no_header',
                "commerce_webhook_signature hmac;\n"
                . "commerce_webhook_secret x;"),
     qr/commerce_webhook_hmac_header/,
     'hmac without commerce_webhook_hmac_header fails nginx -t');

like(conf_error('bad_algorithm',
                "commerce_webhook_signature hmac;\n"
                . "commerce_webhook_hmac_header X-Sig;\n"
                . "commerce_webhook_hmac_algorithm md5;\n"
                . "commerce_webhook_secret x;"),
     qr/md5/, 'an unknown HMAC algorithm fails nginx -t');

my $bad_std = "whsec_not*base64*$tag";
like(conf_error('bad_standard_secret',
                "commerce_webhook_signature standard;\n"
                . "commerce_webhook_secret $bad_std;"),
     qr/secret is not whsec_<base64>/,
     'a Standard Webhooks secret that is not base64 fails');

ok(conf_ok('valid_hmac',
           "commerce_webhook_signature hmac;\n"
           . "commerce_webhook_hmac_header X-Sig;\n"
           . "commerce_webhook_hmac_algorithm sha512;\n"
           . "commerce_webhook_hmac_encoding base64;\n"
           . "commerce_webhook_hmac_prefix sha512=;\n"
           . "commerce_webhook_secret x;\n"
           . "commerce_webhook_tolerance 0;\n"
           . "commerce_webhook_json off;"),
   'a complete hmac configuration passes nginx -t');

like(conf_error('bad_json_mode',
                "commerce_webhook_signature github;\n"
                . "commerce_webhook_secret x;\n"
                . "commerce_webhook_json sometimes;"),
     qr/invalid value "sometimes"/,
     'commerce_webhook_json takes on, off or always');

ok(conf_ok('off_no_secret', 'commerce_webhook_signature off;'),
   'signature off needs no secret');

# --------------------------------------------------------- the server ---

# secrets files: rotation from a file, re-read on reload
my $rot_a = "rotA-$tag";
my $rot_b = "rotB-$tag";
my $rot_c = "rotC-$tag";
my $file_a = "fileA-$tag";
my $file_b = "fileB-$tag";
my $file_c = "fileC-$tag";

write_file("$dir/secrets", "# webhook secrets, newest first\n\n"
                           . "$file_a\n   \n#$file_c\n$file_b\n");

# the providers' published vectors (see t/unit/test_sig.c)
my $SW_SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
my $ST_SECRET = 'webhook_secret';
my $GH_SECRET = "It's a Secret to Everybody";
my $SL_SECRET = '8f742231b10e8888abcd99yyyzzz85a5';
my $RZ_SECRET = 'key_secret';

my $locations = '';

for my $s (@schemes) {
    my $extra = '';
    if ($s eq 'hmac') {
        $extra = <<'EOF';
            commerce_webhook_hmac_header X-Signature;
            commerce_webhook_hmac_algorithm sha512;
            commerce_webhook_hmac_encoding base64;
            commerce_webhook_hmac_prefix sha512=;
EOF
    }
    $locations .= <<"EOF";
        location = /wh/$s {
            commerce_webhook $s;
            commerce_webhook_topic wh.$s;
            commerce_webhook_signature $s;
            commerce_webhook_secret $secret{$s};
$extra
        }
EOF
}

$t->write_nginx_conf(<<"EOF");
    commerce_kafka_brokers $bs;
    commerce_kafka_property reconnect.backoff.max.ms 200;
    commerce_kafka_delivery_timeout 5s;

    server {
        listen 127.0.0.1:%%PORT_HTTP%%;

$locations

        location = /rotate {
            commerce_webhook rotate;
            commerce_webhook_topic wh.rotate;
            commerce_webhook_signature github;
            commerce_webhook_secret $rot_a;
            commerce_webhook_secret $rot_b;
        }

        location = /file {
            commerce_webhook file;
            commerce_webhook_topic wh.file;
            commerce_webhook_signature shopify;
            commerce_webhook_secret_file $dir/secrets;
        }

        location = /vector/github {
            commerce_webhook github;
            commerce_webhook_topic wh.vectors;
            commerce_webhook_signature github;
            commerce_webhook_secret "$GH_SECRET";
        }

        location = /vector/standard {
            commerce_webhook standard;
            commerce_webhook_topic wh.vectors;
            commerce_webhook_signature standard;
            commerce_webhook_secret $SW_SECRET;
            commerce_webhook_tolerance 0;
        }

        location = /vector/stripe {
            commerce_webhook stripe;
            commerce_webhook_topic wh.vectors;
            commerce_webhook_signature stripe;
            commerce_webhook_secret $ST_SECRET;
            commerce_webhook_tolerance 0;
        }

        location = /vector/slack {
            commerce_webhook slack;
            commerce_webhook_topic wh.vectors;
            commerce_webhook_signature slack;
            commerce_webhook_secret $SL_SECRET;
            commerce_webhook_tolerance 0;
        }

        location = /vector/razorpay {
            commerce_webhook razorpay;
            commerce_webhook_topic wh.vectors;
            commerce_webhook_signature razorpay;
            commerce_webhook_secret $RZ_SECRET;
        }

        location = /json {
            commerce_webhook json;
            commerce_webhook_topic wh.json;
            commerce_webhook_signature github;
            commerce_webhook_secret $secret{github};
        }

        location = /json-off {
            commerce_webhook json;
            commerce_webhook_topic wh.json;
            commerce_webhook_signature github;
            commerce_webhook_secret $secret{github};
            commerce_webhook_json off;
        }

        location = /id/hmac {
            commerce_webhook hmacid;
            commerce_webhook_topic wh.id;
            commerce_webhook_delivery_id \$http_x_delivery_id;
            commerce_webhook_signature github;
            commerce_webhook_secret $secret{github};
        }

        location = /json-always {
            commerce_webhook json;
            commerce_webhook_topic wh.json;
            commerce_webhook_signature github;
            commerce_webhook_secret $secret{github};
            commerce_webhook_json always;
        }

        location = /tight {
            commerce_webhook tight;
            commerce_webhook_topic wh.tight;
            commerce_webhook_signature standard;
            commerce_webhook_secret $secret{standard};
            commerce_webhook_tolerance 60s;
        }
    }
EOF

$t->start_nginx;

# Accepted webhooks: [topic, partition, offset, body, scheme, what];
# refused ones: [topic, body, what].  Checked against Kafka at the end.
my (@accepted, @refused);

sub decode {
    my ($s) = @_;
    my $v = eval { JSON::PP->new->decode($s) };
    return $v // {};
}

sub post {
    my ($path, $body, @h) = @_;
    return $t->http(POST => $path, 'Content-Type' => 'application/json', @h,
                    -body => $body, -timeout => 30);
}

# Posts and expects 202; remembers it for the Kafka check.
sub accepted {
    my ($what, $path, $topic, $scheme, $body, @h) = @_;
    my $r = post($path, $body, @h);
    my $ack = decode($r->{body});
    is($r->{status}, 202, "$what: 202") or diag("$r->{status} $r->{body}");
    push @accepted, [$topic, $ack->{partition}, $ack->{offset}, $body,
                     $scheme, $what] if $r->{status} == 202;
    return $r;
}

# Posts and expects a JSON error; remembers the body as not publishable.
sub refused {
    my ($what, $status, $code, $path, $topic, $body, @h) = @_;
    my $r = post($path, $body, @h);
    is($r->{status}, $status, "$what: $status")
        or diag("$r->{status} $r->{body}");
    my $e = decode($r->{body});
    is($e->{error}, $code, "$what: $code");
    ok(defined $e->{message} && length $e->{message},
       "$what: with a message");
    push @refused, [$topic, $body, $what];
    return $r;
}

# ---------------------------------------------------- each scheme ---

my $n = 0;

for my $s (@schemes) {
    my $path = "/wh/$s";
    my $topic = "wh.$s";
    my $body = sub {
        my ($case) = @_;
        $n++;
        return qq({"scheme":"$s","case":"$case","n":$n,"tag":"$tag",)
               . qq("note":"caf\xc3\xa9 \\"q\\"\\n"});
    };

    my $b = $body->('valid');
    accepted("$s: valid signature", $path, $topic, $s, $b,
             sign($s, $secret{$s}, $b));

    $b = $body->('wrong-secret');
    refused("$s: wrong secret", 401, 'signature_mismatch', $path, $topic, $b,
            sign($s, $wrong{$s}, $b));

    $b = $body->('tampered');
    my %h = sign($s, $secret{$s}, $b);
    (my $tampered = $b) =~ s/"case"/"CASE"/;
    refused("$s: tampered body", 401, 'signature_mismatch', $path, $topic,
            $tampered, %h);

    $b = $body->('missing');
    %h = sign($s, $secret{$s}, $b);
    delete $h{$sig_header{$s}};
    refused("$s: no signature header", 401, 'missing_signature', $path,
            $topic, $b, %h);

    $b = $body->('garbled');
    %h = sign($s, $secret{$s}, $b);
    $h{$sig_header{$s}} = $garbled{$s};
    refused("$s: garbled signature header", 400, 'malformed_signature',
            $path, $topic, $b, %h);

    next unless $timestamped{$s};

    my $now = time;

    $b = $body->('inside-window');
    accepted("$s: timestamp now-290 (inside the 300s window)", $path, $topic,
             $s, $b, sign($s, $secret{$s}, $b, ts => $now - 290));

    $b = $body->('too-old');
    refused("$s: timestamp now-400", 401, 'timestamp_too_old', $path,
            $topic, $b, sign($s, $secret{$s}, $b, ts => $now - 400));

    $b = $body->('future');
    if ($s eq 'stripe') {
        # Stripe's libraries reject only old timestamps; so does the
        # module (ngx_http_commerce_sig.c)
        accepted("stripe: timestamp now+400 (Stripe has no future bound)",
                 $path, $topic, $s, $b,
                 sign($s, $secret{$s}, $b, ts => $now + 400));
    } else {
        refused("$s: timestamp now+400", 401, 'timestamp_too_new', $path,
                $topic, $b, sign($s, $secret{$s}, $b, ts => $now + 400));
    }

    $b = $body->('bad-ts');
    %h = sign($s, $secret{$s}, $b);
    if ($s eq 'stripe') {
        $h{'Stripe-Signature'} =~ s/^t=\d+/t=16142653x0/;
    } elsif ($s eq 'slack') {
        $h{'X-Slack-Request-Timestamp'} = '16142653x0';
    } else {
        $h{'webhook-timestamp'} = '16142653x0';
    }
    refused("$s: garbled timestamp", 400, 'malformed_timestamp', $path,
            $topic, $b, %h);

    $b = $body->('no-ts');
    %h = sign($s, $secret{$s}, $b);
    if ($s eq 'stripe') {
        $h{'Stripe-Signature'} =~ s/^t=\d+,//;
    } elsif ($s eq 'slack') {
        delete $h{'X-Slack-Request-Timestamp'};
    } else {
        delete $h{'webhook-timestamp'};
    }
    refused("$s: no timestamp", 400, 'missing_timestamp', $path, $topic, $b,
            %h);
}

# Standard Webhooks specifics: webhook-id is signed and required; a sender
# rotating its key sends several signatures; other versions are skipped.
{
    my $b = qq({"standard":"extra","tag":"$tag","n":1});
    my %h = sign('standard', $secret{standard}, $b);
    delete $h{'webhook-id'};
    refused('standard: no webhook-id', 400, 'missing_id', '/wh/standard',
            'wh.standard', $b, %h);

    $b = qq({"standard":"extra","tag":"$tag","n":2});
    %h = sign('standard', $secret{standard}, $b, id => 'msg_signed');
    $h{'webhook-id'} = 'msg_other';
    refused('standard: webhook-id changed', 401, 'signature_mismatch',
            '/wh/standard', 'wh.standard', $b, %h);

    $b = qq({"standard":"extra","tag":"$tag","n":3});
    %h = sign('standard', $secret{standard}, $b);
    my %bad = sign('standard', $wrong{standard}, $b,
                   id => $h{'webhook-id'}, ts => $h{'webhook-timestamp'});
    $h{'webhook-signature'} = "v2,abc $bad{'webhook-signature'} "
                              . $h{'webhook-signature'};
    accepted('standard: one of several signatures matches', '/wh/standard',
             'wh.standard', 'standard', $b, %h);

    $b = qq({"standard":"extra","tag":"$tag","n":4});
    %h = sign('standard', $secret{standard}, $b);
    $h{'webhook-signature'} =~ s/^v1,/v2,/;
    refused('standard: only an unknown version', 400,
            'unsupported_signature', '/wh/standard', 'wh.standard', $b, %h);

    # commerce_webhook_tolerance 60s
    $b = qq({"standard":"tight","tag":"$tag","n":5});
    refused('tolerance 60s: now-120 is too old', 401, 'timestamp_too_old',
            '/tight', 'wh.tight', $b,
            sign('standard', $secret{standard}, $b, ts => time - 120));
    $b = qq({"standard":"tight","tag":"$tag","n":6});
    accepted('tolerance 60s: now-30 passes', '/tight', 'wh.tight',
             'standard', $b,
             sign('standard', $secret{standard}, $b, ts => time - 30));
}

# -------------------------------------------- published vectors e2e ---

# GitHub docs, "Validating webhook deliveries"
{
    my $r = $t->http(POST => '/vector/github',
        'X-Hub-Signature-256' => 'sha256=757107ea0eb2509fc211221cce984b8a'
                                 . '37570b6d7586c22c46f4379c8b043e17',
        -body => 'Hello, World!');
    is($r->{status}, 202, "GitHub's documented vector: 202")
        or diag($r->{body});
    my $ack = decode($r->{body});
    push @accepted, ['wh.vectors', $ack->{partition}, $ack->{offset},
                     'Hello, World!', 'github', 'GitHub vector'];

    $r = $t->http(POST => '/vector/github',
        'X-Hub-Signature-256' => 'sha256=757107ea0eb2509fc211221cce984b8a'
                                 . '37570b6d7586c22c46f4379c8b043e17',
        -body => 'Hello, World?');
    is($r->{status}, 401, "GitHub's vector on another body: 401");
    push @refused, ['wh.vectors', 'Hello, World?', 'GitHub vector tampered'];
}

# Standard Webhooks libraries' sign test: a fixed 2021 timestamp, so the
# window is off (commerce_webhook_tolerance 0)
{
    my $body = '{"test": 2432232314}';
    my $r = post('/vector/standard', $body,
                 'webhook-id' => 'msg_p5jXN8AQM9LWM0D4loKWxJek',
                 'webhook-timestamp' => '1614265330',
                 'webhook-signature' =>
                     'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
    is($r->{status}, 202, "Standard Webhooks' published vector: 202")
        or diag($r->{body});
    my $ack = decode($r->{body});
    push @accepted, ['wh.vectors', $ack->{partition}, $ack->{offset}, $body,
                     'standard', 'Standard Webhooks vector'];

    # the wrong signature of the Python library's test
    $r = post('/vector/standard', '{"test": 2432232314} ',
              'webhook-id' => 'msg_p5jXN8AQM9LWM0D4loKWxJek',
              'webhook-timestamp' => '1614265330',
              'webhook-signature' =>
                  'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=');
    is($r->{status}, 401, "Standard Webhooks' invalid vector: 401");
    push @refused, ['wh.vectors', '{"test": 2432232314} ',
                    'Standard Webhooks invalid vector'];
}

# stripe-dotnet EventUtilityTest (v1 and a v0 entry that is ignored)
{
    my $body = <<'EOF';
{
  "id": "evt_123",
  "object": "event",
  "account": "acct_123",
  "api_version": "2017-05-25",
  "created": 1533204620,
  "data": {
    "object": {
      "id": "cus_123",
      "object": "customer",
      "created": 123456789,
      "email": "test@stripe.com",
      "livemode": false,
      "metadata": {}
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {
    "id": "req_123",
    "idempotency_key": "idempotency-key-123"
  },
  "type": "customer.created"
}
EOF
    my $r = post('/vector/stripe', $body,
        'Stripe-Signature' => 't=1533204620,'
            . 'v1=2220f87ef101a04665f11cdf770523143f875572008577fa0f20882dd'
            . 'b9cc3c7,'
            . 'v0=63f3a72374a733066c4be69ed7f8e5ac85c22c9f0a6a612ab9a025a9e'
            . '4ee7eef');
    is($r->{status}, 202, "stripe-dotnet's published vector: 202")
        or diag($r->{body});
    my $ack = decode($r->{body});
    push @accepted, ['wh.vectors', $ack->{partition}, $ack->{offset}, $body,
                     'stripe', 'Stripe vector'];
}

# Slack docs, "Verifying requests from Slack" (form-encoded body)
{
    my $body = 'token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain='
        . 'testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id='
        . 'U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text='
        . '&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J'
        . '%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id='
        . '398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c';
    my $r = $t->http(POST => '/vector/slack',
        'Content-Type' => 'application/x-www-form-urlencoded',
        'X-Slack-Request-Timestamp' => '1531420618',
        'X-Slack-Signature' => 'v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21'
                               . 'a10bd27519666489c69b503',
        -body => $body);
    is($r->{status}, 202, "Slack's documented vector: 202")
        or diag($r->{body});
    my $ack = decode($r->{body});
    push @accepted, ['wh.vectors', $ack->{partition}, $ack->{offset}, $body,
                     'slack', 'Slack vector'];
}

# razorpay-python test_verify_webhook_signature
{
    my $body = <<'EOF';
{
  "event": "payment.authorized",
  "entity": "event",
  "contains": [
    "payment"
  ],
  "payload": {
    "payment": {
      "entity": {
        "id": "pay_6koWN7bvxujzxM",
        "entity": "payment",
        "amount": 1000000,
        "currency": "INR",
        "status": "captured",
        "order_id": "order_100000000order",
        "international": false,
        "method": "card",
        "amount_refunded": 0,
        "refund_status": null,
        "captured": true,
        "description": "random description",
        "card_id": "card_6koWNAT6LASUqy",
        "bank": null,
        "wallet": null,
        "vpa": null,
        "email": "a@b.com",
        "contact": "+919999999999",
        "notes": {
          "merchant_order_id": "random order id"
        },
        "fee": 23000,
        "service_tax": 3000,
        "error_code": null,
        "error_description": null,
        "created_at": 1479978483
      }
    }
  },
  "created_at": 1400826760
}
EOF
    my $r = post('/vector/razorpay', $body, 'X-Razorpay-Signature' =>
        'd60e67fd884556c045e9be7dad57903e33efc7172c17c6e3ef77db42d2b366e9');
    is($r->{status}, 202, "razorpay-python's published vector: 202")
        or diag($r->{body});
    my $ack = decode($r->{body});
    push @accepted, ['wh.vectors', $ack->{partition}, $ack->{offset}, $body,
                     'razorpay', 'Razorpay vector'];
}

# ------------------------------------------------------ key rotation ---

{
    my $i = 0;
    for my $sec ($rot_a, $rot_b) {
        $i++;
        my $b = qq({"rotate":$i,"tag":"$tag"});
        accepted("two commerce_webhook_secret: secret $i passes", '/rotate',
                 'wh.rotate', 'github', $b, sign('github', $sec, $b));
    }
    my $b = qq({"rotate":3,"tag":"$tag"});
    refused('two commerce_webhook_secret: a third secret fails', 401,
            'signature_mismatch', '/rotate', 'wh.rotate', $b,
            sign('github', $rot_c, $b));

    $i = 0;
    for my $sec ($file_a, $file_b) {
        $i++;
        $b = qq({"file":$i,"tag":"$tag"});
        accepted("secret file: secret $i passes", '/file', 'wh.file',
                 'shopify', $b, sign('shopify', $sec, $b));
    }
    $b = qq({"file":"commented","tag":"$tag"});
    refused('secret file: a commented-out line is no secret', 401,
            'signature_mismatch', '/file', 'wh.file', $b,
            sign('shopify', $file_c, $b));

    # rotate: the new file holds only C; reload re-reads it
    write_file("$dir/secrets", "$file_c\n");
    ok($t->reload_nginx, 'reload with the rewritten secret file');

    $b = qq({"file":"after-reload-a","tag":"$tag"});
    refused('after reload: the old secret A fails', 401,
            'signature_mismatch', '/file', 'wh.file', $b,
            sign('shopify', $file_a, $b));
    $b = qq({"file":"after-reload-b","tag":"$tag"});
    refused('after reload: the old secret B fails', 401,
            'signature_mismatch', '/file', 'wh.file', $b,
            sign('shopify', $file_b, $b));
    $b = qq({"file":"after-reload-c","tag":"$tag"});
    accepted('after reload: the new secret C passes', '/file', 'wh.file',
             'shopify', $b, sign('shopify', $file_c, $b));
}

# -------------------------------------------------------- JSON check ---

{
    my $bad = qq({"order": 1,\n  "items": [1, 2,, 3]});
    my $r = refused('invalid JSON with application/json', 400,
                    'invalid_json', '/json', 'wh.json', $bad,
                    sign('github', $secret{github}, $bad));
    like(decode($r->{body})->{message},
         qr/(?:line|column|position|offset)\s*:?\s*\d+/i,
         'invalid_json names the position');

    $bad = qq({"vnd": tru});
    $r = $t->http(POST => '/json',
                  'Content-Type' => 'application/vnd.shop+json; charset=utf-8',
                  sign('github', $secret{github}, $bad), -body => $bad);
    is($r->{status}, 400, 'invalid JSON with application/*+json: 400');
    is(decode($r->{body})->{error}, 'invalid_json', '... invalid_json');
    push @refused, ['wh.json', $bad, 'invalid +json'];

    $bad = qq({"order": 2, "truncated": );
    $r = $t->http(POST => '/json',
                  'Content-Type' => 'Application/JSON; charset=utf-8',
                  sign('github', $secret{github}, $bad), -body => $bad);
    is($r->{status}, 400, 'invalid JSON, content type in another case: 400');
    push @refused, ['wh.json', $bad, 'invalid JSON, Application/JSON'];

    # a bad MAC is reported before the JSON (the body is not trusted)
    $bad = qq({"order": 3,);
    refused('invalid JSON with a wrong signature: 401 first', 401,
            'signature_mismatch', '/json', 'wh.json', $bad,
            sign('github', $wrong{github}, $bad));

    my $good = qq({"order":{"id":7,"lines":[{"sku":"A","qty":2}]},)
               . qq("tag":"$tag","u":"\\u00e9"});
    accepted('valid JSON passes', '/json', 'wh.json', 'github', $good,
             sign('github', $secret{github}, $good));

    my $text = qq(not json at all {"tag":"$tag");
    $r = $t->http(POST => '/json', 'Content-Type' => 'text/plain',
                  sign('github', $secret{github}, $text), -body => $text);
    is($r->{status}, 202, 'text/plain body: no JSON check');
    my $ack = decode($r->{body});
    push @accepted, ['wh.json', $ack->{partition}, $ack->{offset}, $text,
                     'github', 'text/plain'];

    $text = qq(no content type {"tag":"$tag");
    $r = $t->http(POST => '/json', sign('github', $secret{github}, $text),
                  -body => $text);
    is($r->{status}, 202, 'no Content-Type: no JSON check');
    $ack = decode($r->{body});
    push @accepted, ['wh.json', $ack->{partition}, $ack->{offset}, $text,
                     'github', 'no content type'];

    # what the projector refuses, refused here the same way
    for my $case (['a key twice', qq({"tag":"$tag","a":1,"a":2}),
                   'duplicate_key'],
                  ['a key twice in a nested object',
                   qq({"tag":"$tag","o":{"k":1,"k":1}}), 'duplicate_key'],
                  ['a top-level string', qq("$tag"), 'not_an_object'],
                  ['a top-level array', qq(["$tag"]), 'not_an_object'],
                  ['a top-level number', '42', 'not_an_object'],
                  ['a top-level null', 'null', 'not_an_object'],
                  ['\u0000 in a string', qq({"tag":"$tag","z":"a\\u0000"}),
                   'invalid_json'],
                  ['a byte that is not UTF-8', qq({"tag":"$tag\xff"}),
                   'invalid_json'])
    {
        my ($what, $body, $code) = @$case;
        $r = refused("JSON with $what: 400", 400, $code, '/json', 'wh.json',
                     $body, sign('github', $secret{github}, $body));
        like(decode($r->{body})->{message}, qr/line \d+, column \d+/,
             "... $code says where");
    }

    $good = qq({"tag":"$tag","a":{"k":1},"b":{"k":2},"l":[{"k":1},{"k":2}]});
    accepted('the same key in different objects passes', '/json', 'wh.json',
             'github', $good, sign('github', $secret{github}, $good));

    $bad = qq({"json":"off","tag":"$tag","dup":1,"dup":2});
    accepted('commerce_webhook_json off: a duplicate key passes',
             '/json-off', 'wh.json', 'github', $bad,
             sign('github', $secret{github}, $bad));

    # commerce_webhook_json always: every body, whatever its type
    $bad = qq(not json {"tag":"$tag"});
    $r = $t->http(POST => '/json-always', 'Content-Type' => 'text/plain',
                  sign('github', $secret{github}, $bad), -body => $bad);
    is($r->{status}, 400, 'json always: a text/plain body that is not JSON: '
                          . '400');
    is(decode($r->{body})->{error}, 'invalid_json', '... invalid_json');
    push @refused, ['wh.json', $bad, 'json always, text/plain'];

    $bad = qq(["$tag"]);
    $r = $t->http(POST => '/json-always', sign('github', $secret{github},
                  $bad), -body => $bad);
    is($r->{status}, 400, 'json always: no Content-Type, an array: 400');
    is(decode($r->{body})->{error}, 'not_an_object', '... not_an_object');
    push @refused, ['wh.json', $bad, 'json always, no content type'];

    $good = qq({"always":"text/plain","tag":"$tag"});
    $r = $t->http(POST => '/json-always', 'Content-Type' => 'text/plain',
                  sign('github', $secret{github}, $good), -body => $good);
    is($r->{status}, 202, 'json always: a JSON object as text/plain: 202');
    $ack = decode($r->{body});
    push @accepted, ['wh.json', $ack->{partition}, $ack->{offset}, $good,
                     'github', 'json always, object'];

    $bad = qq({"json":"off", "tag":"$tag",);
    accepted('commerce_webhook_json off: invalid JSON passes', '/json-off',
             'wh.json', 'github', $bad,
             sign('github', $secret{github}, $bad));
}

# ------------------------------------------ Svix-branded header names ---

# Svix-powered senders spell the Standard Webhooks headers svix-id,
# svix-timestamp, svix-signature; Svix's libraries take either spelling,
# header by header.  Both spellings with different values: refused.
{
    my $svix = sub {
        my (%h) = @_;
        my %out;
        for my $k (keys %h) {
            (my $n = $k) =~ s/^webhook-/svix-/;
            $out{$n} = $h{$k};
        }
        return %out;
    };

    my $b = qq({"svix":"only","tag":"$tag"});
    my %h = sign('standard', $secret{standard}, $b, id => "msg_svix_$tag");
    my $r = accepted('svix-id, svix-timestamp, svix-signature: 202',
                     '/wh/standard', 'wh.standard', 'standard', $b,
                     $svix->(%h));
    is(decode($r->{body})->{delivery_id}, "msg_svix_$tag",
       'svix-* names: the delivery id is svix-id');

    $b = qq({"svix":"mixed","tag":"$tag"});
    %h = sign('standard', $secret{standard}, $b);
    my %s = $svix->(%h);
    accepted('svix-id with webhook-timestamp and webhook-signature: 202',
             '/wh/standard', 'wh.standard', 'standard', $b,
             'svix-id' => $s{'svix-id'},
             'webhook-timestamp' => $h{'webhook-timestamp'},
             'webhook-signature' => $h{'webhook-signature'});

    $b = qq({"svix":"both-same","tag":"$tag"});
    %h = sign('standard', $secret{standard}, $b);
    accepted('both spellings with the same values: 202', '/wh/standard',
             'wh.standard', 'standard', $b, %h, $svix->(%h));

    $b = qq({"svix":"both-ids","tag":"$tag"});
    %h = sign('standard', $secret{standard}, $b, id => "msg_a_$tag");
    %s = $svix->(sign('standard', $secret{standard}, $b,
                      id => "msg_b_$tag", ts => $h{'webhook-timestamp'}));
    $r = refused('webhook-id and svix-id differ (each signed): 400', 400,
                 'conflicting_headers', '/wh/standard', 'wh.standard', $b,
                 %h, %s);

    $b = qq({"svix":"both-sigs","tag":"$tag"});
    %h = sign('standard', $secret{standard}, $b);
    my %bad = sign('standard', $wrong{standard}, $b,
                   id => $h{'webhook-id'}, ts => $h{'webhook-timestamp'});
    refused('webhook-signature and svix-signature differ: 400', 400,
            'conflicting_headers', '/wh/standard', 'wh.standard', $b, %h,
            'svix-signature' => $bad{'webhook-signature'});

    $b = qq({"svix":"wrong","tag":"$tag"});
    refused('svix-* signed with another secret: 401', 401,
            'signature_mismatch', '/wh/standard', 'wh.standard', $b,
            $svix->(sign('standard', $wrong{standard}, $b)));

    $b = qq({"svix":"no-id","tag":"$tag"});
    %s = $svix->(sign('standard', $secret{standard}, $b));
    delete $s{'svix-id'};
    refused('svix-* without svix-id: 400 missing_id', 400, 'missing_id',
            '/wh/standard', 'wh.standard', $b, %s);
}

# --------------------------------------------- the delivery id's rule ---

# 1 to 400 bytes of visible ASCII, wherever the id comes from: a signed
# header (standard), the provider's header (shopify), the body (stripe),
# commerce_webhook_delivery_id.  Refused with 400 before anything is
# published; ids from headers before the body is read.
{
    my $id400 = 'm' x 390 . sprintf('%010d', 400);
    my $b = qq({"id":"400 bytes","tag":"$tag"});
    my $r = accepted('standard: a 400-byte webhook-id: 202', '/wh/standard',
                     'wh.standard', 'standard', $b,
                     sign('standard', $secret{standard}, $b, id => $id400));
    is(decode($r->{body})->{delivery_id}, $id400,
       '... answered with the whole id');

    for my $case ([401, 'x' x 401], [6144, 'y' x 6144]) {
        my ($len, $id) = @$case;
        $b = qq({"id":"$len bytes","tag":"$tag"});
        $r = refused("standard: a $len-byte webhook-id: 400", 400,
                     'delivery_id_too_long', '/wh/standard', 'wh.standard',
                     $b, sign('standard', $secret{standard}, $b, id => $id));
        like(decode($r->{body})->{message}, qr/400 bytes/,
             "... the message names the limit");
    }

    $b = qq({"id":"svix 401","tag":"$tag"});
    my %h = sign('standard', $secret{standard}, $b, id => 'z' x 401);
    refused('standard: a 401-byte svix-id: 400', 400,
            'delivery_id_too_long', '/wh/standard', 'wh.standard', $b,
            'svix-id' => delete $h{'webhook-id'}, %h);

    my @bad = (['a space', "msg 1"], ['a tab', "msg\t1"],
               ['a control character', "msg\x011"], ['DEL', "msg\x7f1"],
               ['UTF-8', "caf\xc3\xa9"], ['a lone byte', "msg\xff"]);
    for my $case (@bad) {
        my ($what, $id) = @$case;
        $b = qq({"id":"$what","tag":"$tag"});
        refused("standard: a webhook-id with $what: 400", 400,
                'invalid_delivery_id', '/wh/standard', 'wh.standard', $b,
                sign('standard', $secret{standard}, $b, id => $id));
    }

    $b = qq({"id":"punctuation","tag":"$tag"});
    my $punct = q(!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~) . $tag;
    $r = accepted('standard: a webhook-id of ASCII punctuation: 202',
                  '/wh/standard', 'wh.standard', 'standard', $b,
                  sign('standard', $secret{standard}, $b, id => $punct));
    is(decode($r->{body})->{delivery_id}, $punct,
       '... answered as sent (JSON-escaped)');

    # a provider's header, and commerce_webhook_delivery_id
    for my $c (['shopify: X-Shopify-Webhook-Id', '/wh/shopify', 'wh.shopify',
                'shopify', 'X-Shopify-Webhook-Id'],
               ['commerce_webhook_delivery_id', '/id/hmac', 'wh.id',
                'github', 'X-Delivery-Id'])
    {
        my ($what, $path, $topic, $s, $header) = @$c;
        $b = qq({"id":"$what 400","tag":"$tag"});
        $r = accepted("$what of 400 bytes: 202", $path, $topic, $s, $b,
                      sign($s, $secret{$s}, $b), $header => $id400);
        is(decode($r->{body})->{delivery_id}, $id400, "... $header is the id");
        $b = qq({"id":"$what 401","tag":"$tag"});
        refused("$what of 401 bytes: 400", 400, 'delivery_id_too_long', $path,
                $topic, $b, sign($s, $secret{$s}, $b), $header => 'i' x 401);
    }

    $b = qq({"id":"evt_) . ('e' x 397) . qq(","tag":"$tag"});
    refused('stripe: a 401-byte body "id": 400', 400,
            'delivery_id_too_long', '/wh/stripe', 'wh.stripe', $b,
            sign('stripe', $secret{stripe}, $b));
    $b = qq({"id":"evt_\\u0001x","tag":"$tag"});
    refused('stripe: a body "id" with a control character: 400', 400,
            'invalid_delivery_id', '/wh/stripe', 'wh.stripe', $b,
            sign('stripe', $secret{stripe}, $b));

    # refused before the body is read: the connection stays usable and a
    # large body is discarded, not parsed
    my $big = '{"pad":"' . ('p' x 100_000) . qq(","tag":"$tag"});
    my $c = $t->conn(timeout => 30);
    $r = $c->request(POST => '/wh/standard', 'Content-Type' =>
                     'application/json',
                     sign('standard', $secret{standard}, $big,
                          id => 'w' x 401),
                     -body => $big);
    is($r->{status}, 400, 'keepalive: a long id with a large body: 400');
    $b = qq({"id":"after the long one","tag":"$tag"});
    $r = $c->request(POST => '/wh/standard', 'Content-Type' =>
                     'application/json',
                     sign('standard', $secret{standard}, $b), -body => $b);
    is($r->{status}, 202, 'keepalive: the next webhook on it: 202');
    my $ack = decode($r->{body});
    push @accepted, ['wh.standard', $ack->{partition}, $ack->{offset}, $b,
                     'standard', 'after a long id'];
    push @refused, ['wh.standard', $big, 'long id, large body'];
    $c->close;
}

# ------------------------------------------ signatures in one header ---

# At most 8 entries of the supported version in one header (a sender
# rotating keys sends 2 or 3): the 9th makes the header malformed.
{
    for my $s (qw(standard stripe)) {
        for my $n (8, 9) {
            my $b = qq({"entries":$n,"scheme":"$s","tag":"$tag"});
            my %h = sign($s, $secret{$s}, $b);
            my %w = sign($s, $wrong{$s}, $b, id => $h{'webhook-id'});
            if ($s eq 'standard') {
                $h{'webhook-signature'} = join ' ',
                    ($w{'webhook-signature'}) x ($n - 1),
                    $h{'webhook-signature'};
            } else {
                my ($bad) = $w{'Stripe-Signature'} =~ /(v1=\w+)/;
                $h{'Stripe-Signature'} .= ",$bad" x ($n - 1);
            }
            if ($n == 8) {
                accepted("$s: 8 signatures, the last one right: 202",
                         "/wh/$s", "wh.$s", $s, $b, %h);
            } else {
                refused("$s: 9 signatures: 400", 400, 'malformed_signature',
                        "/wh/$s", "wh.$s", $b, %h);
            }
        }
    }
}

# ------------------------------------------ keepalive after refusals ---

{
    # a large body that the early refusals leave unread: it must be
    # discarded, not parsed as the next request
    my $big = '{"pad":"' . ('x' x 200_000) . qq(","tag":"$tag"});
    my $c = $t->conn(timeout => 30);

    my %h = sign('github', $secret{github}, $big);
    delete $h{'X-Hub-Signature-256'};
    my $r = $c->request(POST => '/wh/github', 'Content-Type' =>
                        'application/json', %h, -body => $big);
    is($r->{status}, 401, 'keepalive: unsigned large body: 401');
    isnt(lc($r->{headers}{connection} // ''), 'close',
         'keepalive: the connection is kept after an early 401');

    %h = sign('github', $secret{github}, $big);
    $h{'X-Hub-Signature-256'} = 'sha256=zz';
    $r = $c->request(POST => '/wh/github', 'Content-Type' =>
                     'application/json', %h, -body => $big);
    is($r->{status}, 400, 'keepalive: garbled header, same connection: 400');

    %h = sign('standard', $secret{standard}, $big, ts => time - 1000);
    $r = $c->request(POST => '/wh/standard', 'Content-Type' =>
                     'application/json', %h, -body => $big);
    is($r->{status}, 401, 'keepalive: stale timestamp, same connection: 401');
    is(decode($r->{body})->{error}, 'timestamp_too_old',
       'keepalive: timestamp_too_old');

    %h = sign('github', $wrong{github}, $big);
    $r = $c->request(POST => '/wh/github', 'Content-Type' =>
                     'application/json', %h, -body => $big);
    is($r->{status}, 401, 'keepalive: wrong MAC, same connection: 401');

    my $b = qq({"keepalive":"after refusals","tag":"$tag"});
    $r = $c->request(POST => '/wh/github', 'Content-Type' =>
                     'application/json', sign('github', $secret{github}, $b),
                     -body => $b);
    is($r->{status}, 202, 'keepalive: a valid webhook on the same '
                          . 'connection after four refusals: 202');
    is($c->served, 5, 'five responses on one connection');
    my $ack = decode($r->{body});
    push @accepted, ['wh.github', $ack->{partition}, $ack->{offset}, $b,
                     'github', 'keepalive'];
    push @refused, ['wh.github', $big, 'keepalive refusals'],
                   ['wh.standard', $big, 'keepalive stale'];
    $c->close;
}

# ------------------------------------------------------- Kafka check ---

my %topics;
$topics{ $_->[0] } = 1 for @accepted, @refused;
my %msgs = map { $_ => [$broker->consume($_)] } sort keys %topics;

for my $a (@accepted) {
    my ($topic, $p, $o, $body, $scheme, $what) = @$a;
    my @same = grep { defined $_->{value} && $_->{value} eq $body }
               @{ $msgs{$topic} };
    is(scalar @same, 1, "Kafka: $what published once");
    my $m = $same[0] or next;
    ok(defined $p && $m->{partition} == $p && $m->{offset} == $o,
       "Kafka: $what at the acknowledged partition/offset");
    is($m->{h}{signature_scheme}, $scheme,
       "Kafka: $what has signature_scheme=$scheme");
}

for my $r (@refused) {
    my ($topic, $body, $what) = @$r;
    my @same = grep { defined $_->{value} && $_->{value} eq $body }
               @{ $msgs{$topic} };
    is(scalar @same, 0, "Kafka: refused '$what' not published");
}

# ---------------------------------------------------------- the logs ---

my $log = $t->slurp($t->error_log_path);
my $conf_out = join '', @conf_outputs;

# (the vectors' generic secrets "webhook_secret" and "key_secret" are left
# out: directive names such as commerce_webhook_secret contain them)
for my $s (sort(values %secret), sort(values %wrong), $rot_a, $rot_b,
           $rot_c, $file_a, $file_b, $file_c, $GH_SECRET, $SW_SECRET,
           $SL_SECRET, $bad_std)
{
    ok(index($log, $s) < 0 && index($conf_out, $s) < 0,
       "no secret in the logs: " . substr($s, 0, 6) . '...');
}

# the base64-decoded Standard Webhooks key neither
(my $std_b64 = $secret{standard}) =~ s/^whsec_//;
ok(index($log, decode_base64($std_b64)) < 0, 'no decoded key in the log');

my @warn = grep { /\[warn\]/ } split /\n/, $log;
ok((grep { /signature_mismatch/ && /github/ } @warn),
   'a mismatch is logged at warn with source and reason');
ok((grep { /timestamp_too_old/ && /standard/ } @warn),
   'a stale timestamp is logged at warn with source and reason');
ok((grep { /missing_signature/ } @warn), 'a missing signature is logged');

$t->stop_nginx;
$broker->stop;

$t->done;


sub write_file {
    my ($path, $text) = @_;
    open my $fh, '>', "$path.tmp" or die "$path: $!";
    print {$fh} $text;
    close $fh;
    rename "$path.tmp", $path or die "rename $path: $!";
}
