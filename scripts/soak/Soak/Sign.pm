package Soak::Sign;

# The headers a provider sends with a webhook, signed its way: one entry
# per signature scheme of conf/commerce-webhooks.conf (docs/directives.md,
# "commerce_webhook_signature"). A new scheme is a new entry.
#
#   my %h = Soak::Sign::headers('stripe', $secret, $delivery_id, $body);

use strict;
use warnings;

use Digest::SHA qw(hmac_sha256 hmac_sha256_hex);
use MIME::Base64 qw(decode_base64 encode_base64);

sub b64 { return encode_base64($_[0], '') }

# Standard Webhooks: whsec_<base64> decoded is the key, over
# "{id}.{timestamp}.{body}".
sub standard {
    my ($secret, $id, $ts, $body) = @_;
    my $key = decode_base64($secret =~ s/^whsec_//r);
    return ('webhook-id' => $id, 'webhook-timestamp' => $ts,
            'webhook-signature'
                => 'v1,' . b64(hmac_sha256("$id.$ts.$body", $key)));
}

# scheme -> sub(secret, delivery id, unix time, body) -> header list. The
# delivery id of stripe (the body's "id") and slack (its "event_id") is in
# the body the traffic generator wrote.
our %SCHEME = (
    standard => \&standard,
    stripe => sub {
        my ($secret, $id, $ts, $body) = @_;
        return ('Stripe-Signature'
                    => "t=$ts,v1=" . hmac_sha256_hex("$ts.$body", $secret));
    },
    shopify => sub {
        my ($secret, $id, $ts, $body) = @_;
        return ('X-Shopify-Hmac-Sha256' => b64(hmac_sha256($body, $secret)),
                'X-Shopify-Webhook-Id' => $id,
                'X-Shopify-Shop-Domain' => 'soak.myshopify.com',
                'X-Shopify-Topic' => 'products/update');
    },
    github => sub {
        my ($secret, $id, $ts, $body) = @_;
        return ('X-Hub-Signature-256'
                    => 'sha256=' . hmac_sha256_hex($body, $secret),
                'X-GitHub-Delivery' => $id, 'X-GitHub-Event' => 'push',
                'X-GitHub-Hook-Installation-Target-ID' => 'soak');
    },
    slack => sub {
        my ($secret, $id, $ts, $body) = @_;
        return ('X-Slack-Request-Timestamp' => $ts, 'X-Slack-Signature'
                    => 'v0=' . hmac_sha256_hex("v0:$ts:$body", $secret));
    },
    hmac => sub {
        my ($secret, $id, $ts, $body) = @_;
        return ('X-Signature' => 'sha256=' . hmac_sha256_hex($body, $secret),
                'X-Delivery-Id' => $id);
    },
);

# Signed now, as a provider signs each attempt.
sub headers {
    my ($scheme, $secret, $id, $body) = @_;
    my $sign = $SCHEME{$scheme} or die "no signer for scheme $scheme\n";
    return ('Content-Type' => 'application/json',
            'X-Merchant-Id' => 'soak-merchant',
            $sign->($secret, $id, int(time), $body));
}

1;
