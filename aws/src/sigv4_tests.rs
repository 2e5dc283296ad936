//! Requests signed by botocore 1.44's `SigV4Auth` (credentials AKIDEXAMPLE / the AWS
//! documentation's example secret), verified here. `aws/tests/botocore.rs` signs fresh ones.

use super::*;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const DATE: &str = "20261201T020332Z";

struct Fixture {
    method: &'static str,
    path: &'static str,
    query: &'static str,
    headers: [(&'static str, &'static str); 4],
    body: &'static str,
}

impl Fixture {
    fn request(&self) -> SignedRequest<'_> {
        SignedRequest {
            method: self.method,
            path: self.path,
            query: self.query,
            headers: &self.headers,
            body: self.body.as_bytes(),
        }
    }
}

const ELBV2_POST: Fixture = Fixture {
    method: "POST",
    path: "/",
    query: "",
    headers: [
        ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
        ("X-Amz-Date", "20261201T020332Z"),
        (
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261201/us-east-1/elasticloadbalancing/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, Signature=7bc9e2295dbb563e27f9174e5a326b4f6a3316a7f89f76dd7b3ab19113f46fe7",
        ),
        ("Host", "127.0.0.1:9901"),
    ],
    body: "Action=DescribeLoadBalancers&Version=2015-12-01",
};

const ECS_POST: Fixture = Fixture {
    method: "POST",
    path: "/",
    query: "",
    headers: [
        ("Content-Type", "application/x-amz-json-1.1"),
        ("X-Amz-Target", "AmazonEC2ContainerServiceV20141113.ListServices"),
        (
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261201/us-east-1/ecs/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=57740d48d3c3ebe1634d5f9d03cd322c89ccd28db52cf65f10eec4076b28571b",
        ),
        ("x-amz-date", "20261201T020332Z"),
    ],
    body: "{\"cluster\": \"default\"}",
};

const GET_WITH_QUERY: Fixture = Fixture {
    method: "GET",
    path: "/a/b%20c",
    query: "Version=2015-12-01&Action=DescribeRules&ListenerArn=arn%3Aaws%3Ax%2Fy",
    headers: [
        ("X-Amz-Date", "20261201T020334Z"),
        (
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261201/us-east-1/elasticloadbalancing/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=b211a74ce0bbf48d042adc27820371e448a0ac9330995b224310da30d5577c30",
        ),
        ("Host", "127.0.0.1:9901"),
        ("User-Agent", "aws-cli/1.46.3"),
    ],
    body: "",
};

fn at(amz_date: &str) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(parse_amz_date(amz_date).unwrap())
}

fn expect<'a>(region: Option<&'a str>, service: Option<&'a str>, now: SystemTime) -> Expect<'a> {
    Expect {
        region,
        service,
        now,
        max_skew: MAX_CLOCK_SKEW,
    }
}

fn check(f: &Fixture, secret: &str, e: &Expect<'_>) -> Result<(), SigError> {
    let req = f.request();
    let auth = Authorization::of(&req)?;
    verify(&req, &auth, secret, e)
}

#[test]
fn botocore_signatures_verify() {
    // The ECS fixture's Host header is left out on purpose: see the next test.
    let ecs_with_host: Vec<(&str, &str)> = ECS_POST
        .headers
        .iter()
        .copied()
        .chain([("Host", "127.0.0.1:9901")])
        .collect();
    let ecs = SignedRequest {
        headers: &ecs_with_host,
        ..ECS_POST.request()
    };
    let now = at(DATE);
    check(
        &ELBV2_POST,
        SECRET,
        &expect(Some("us-east-1"), Some("elasticloadbalancing"), now),
    )
    .unwrap();
    verify(
        &ecs,
        &Authorization::of(&ecs).unwrap(),
        SECRET,
        &expect(Some("us-east-1"), Some("ecs"), now),
    )
    .unwrap();
    check(&GET_WITH_QUERY, SECRET, &expect(None, None, now)).unwrap();
}

#[test]
fn a_signed_header_missing_from_the_request_is_malformed() {
    let err = check(&ECS_POST, SECRET, &expect(None, None, at(DATE))).unwrap_err();
    assert!(
        matches!(err, SigError::Malformed(ref m) if m.contains("host")),
        "{err:?}"
    );
}

#[test]
fn a_wrong_secret_does_not_match() {
    let err = check(&ELBV2_POST, "not-the-secret", &expect(None, None, at(DATE))).unwrap_err();
    assert_eq!(err, SigError::Mismatch);
    assert_eq!(err.query_code(), "SignatureDoesNotMatch");
    assert_eq!(err.json_type(), "InvalidSignatureException");
}

#[test]
fn a_changed_body_does_not_match() {
    let req = SignedRequest {
        body: b"Action=DeleteLoadBalancer&Version=2015-12-01",
        ..ELBV2_POST.request()
    };
    let auth = Authorization::of(&req).unwrap();
    assert_eq!(
        verify(&req, &auth, SECRET, &expect(None, None, at(DATE))),
        Err(SigError::Mismatch)
    );
}

#[test]
fn an_old_or_future_date_is_expired() {
    let sixteen_minutes = Duration::from_secs(16 * 60);
    for now in [at(DATE) + sixteen_minutes, at(DATE) - sixteen_minutes] {
        let err = check(&ELBV2_POST, SECRET, &expect(None, None, now)).unwrap_err();
        assert!(matches!(err, SigError::Expired(_)), "{err:?}");
    }
    // Within the skew: still good.
    check(
        &ELBV2_POST,
        SECRET,
        &expect(None, None, at(DATE) + Duration::from_secs(14 * 60)),
    )
    .unwrap();
}

#[test]
fn another_region_or_service_is_refused() {
    let now = at(DATE);
    let err = check(&ELBV2_POST, SECRET, &expect(Some("eu-west-1"), None, now)).unwrap_err();
    assert!(
        matches!(err, SigError::WrongScope(ref m) if m.contains("us-east-1")),
        "{err:?}"
    );
    let err = check(&ELBV2_POST, SECRET, &expect(None, Some("ecs"), now)).unwrap_err();
    assert!(
        matches!(err, SigError::WrongScope(ref m) if m.contains("elasticloadbalancing")),
        "{err:?}"
    );
    assert_eq!(err.query_code(), "SignatureDoesNotMatch");
}

#[test]
fn the_credential_scope_is_readable_before_any_secret() {
    let auth = Authorization::of(&ECS_POST.request()).unwrap();
    assert_eq!(auth.access_key_id, "AKIDEXAMPLE");
    assert_eq!(
        (auth.region.as_str(), auth.service.as_str()),
        ("us-east-1", "ecs")
    );
    assert_eq!(
        auth.signed_headers,
        ["content-type", "host", "x-amz-date", "x-amz-target"]
    );
    assert_eq!(auth.scope(), "20261201/us-east-1/ecs/aws4_request");
}

#[test]
fn malformed_authorization_headers() {
    for bad in [
        "AWS4-HMAC-SHA1 Credential=a/20261201/r/s/aws4_request, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=a/20261201/r/s, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=a/2026-12-01/r/s/aws4_request, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=a/20261201/r/s/aws4_request, SignedHeaders=host, Signature=xyz",
        "AWS4-HMAC-SHA256 Credential=a/20261201/r/s/aws4_request, Signature=00",
        "AWS4-HMAC-SHA256 garbage",
        "",
    ] {
        assert!(
            matches!(Authorization::parse(bad), Err(SigError::Malformed(_))),
            "{bad}"
        );
    }
    let none = SignedRequest {
        headers: &[],
        ..ELBV2_POST.request()
    };
    assert_eq!(Authorization::of(&none), Err(SigError::Missing));
    assert_eq!(SigError::Missing.query_code(), "MissingAuthenticationToken");
}

#[test]
fn an_unreadable_date_is_malformed() {
    let mut headers = ELBV2_POST.headers;
    headers[1] = ("X-Amz-Date", "2026-12-01T02:03:32Z");
    let req = SignedRequest {
        headers: &headers,
        ..ELBV2_POST.request()
    };
    let auth = Authorization::of(&req).unwrap();
    let err = verify(&req, &auth, SECRET, &expect(None, None, at(DATE))).unwrap_err();
    assert!(matches!(err, SigError::Malformed(_)), "{err:?}");
}

#[test]
fn signature_reproduces_what_botocore_sent() {
    let req = ELBV2_POST.request();
    let auth = Authorization::of(&req).unwrap();
    assert_eq!(signature(&req, &auth, SECRET, DATE).unwrap(), auth.signature);
}

#[test]
fn canonical_pieces() {
    assert_eq!(canonical_uri(""), "/");
    assert_eq!(canonical_uri("/a/./b/../c//d/"), "/a/c/d/");
    assert_eq!(canonical_uri("/b%20c"), "/b%2520c");
    assert_eq!(canonical_query("b=2&a=1&a=0&c").unwrap(), "a=0&a=1&b=2&c=");
    assert_eq!(canonical_query("k=a%2Fb+c").unwrap(), "k=a%2Fb%2Bc");
    assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
    assert_eq!(parse_amz_date("20000301T000000Z"), Some(951_868_800));
    assert_eq!(parse_amz_date("20001301T000000Z"), None);
    // AWS's documented example: the signing key for 20150830/us-east-1/iam.
    let key = signing_key(SECRET, "20150830", "us-east-1", "iam");
    assert_eq!(
        crate::hex::encode(&key),
        "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
    );
}
