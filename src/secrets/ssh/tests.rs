use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ED25519, PublicKeyData};
use time::OffsetDateTime;
use time::macros::datetime;

use super::*;
use crate::policy::SecretRules;
use crate::secrets::test_support::{ENCRYPTED_PKCS8, LEGACY_ENCRYPTED, PLANTED, RSA_1024_PKCS1};

// Throwaway test keys generated for these tests with OpenSSH 9.2 `ssh-keygen`
// (`-t ed25519|ecdsa -b 384|rsa -b 2048|rsa -b 1024|dsa`, `-m PEM` for the legacy ones,
// `-N throwaway` for the encrypted one) and `openssl genrsa -aes128 -traditional`. They
// protect nothing. ssh-key cannot generate keys without its heavier crypto features.
const ED25519: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACBqdGA7p50caz4is+j7NwdrP8RFqvi6EmSGcb2lvctj/AAAAJiHe3RCh3t0
QgAAAAtzc2gtZWQyNTUxOQAAACBqdGA7p50caz4is+j7NwdrP8RFqvi6EmSGcb2lvctj/A
AAAEA96tctuBXxK6gVTZZFAZoeNBlhG0R7Qw/wJ097iPQaM2p0YDunnRxrPiKz6Ps3B2s/
xEWq+LoSZIZxvaW9y2P8AAAADnRocm93YXdheS10ZXN0AQIDBAUGBw==
-----END OPENSSH PRIVATE KEY-----";
const ED25519_ENCRYPTED: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABBSQ35J19
4wYoss6t07FWbXAAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIOS88lskzd/nur5O
85N1LoDfibATmTsApPkcq8YhnGWCAAAAoO5ucIN1vvAXcPaRsJnToygQgm7fb52lHqk4Xr
DqH3VDYlJMrNoUYUcLIX4BGAV49dlzsEG5BGAVSh+pFWGUlMzBxUcAGZgW/GNMUDNLCVQm
ZFRY/ICp8+mnx+WsCr4dXQrtzuLy5MgQ430Vw+mFHtJN37J67oiF0DduXqQUHqUaCO7YcR
bYsvT6+PCIlRnqmuh6p1yGIdVirlBpi9NjOdE=
-----END OPENSSH PRIVATE KEY-----";
const ECDSA_P384: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAiAAAABNlY2RzYS
1zaGEyLW5pc3RwMzg0AAAACG5pc3RwMzg0AAAAYQTIL6SEL50Nikau0P2tctEyAzeupIcP
SeUnhedY8i9Yl/Ol8/xUKBMpLNO7j4JtMaQCNL7hFwawJbMDsFvu1U6dWZmFzvOBsEA+qK
Cerkcuxmy95c98TQBElohes3kr9+cAAADYJEDv8SRA7/EAAAATZWNkc2Etc2hhMi1uaXN0
cDM4NAAAAAhuaXN0cDM4NAAAAGEEyC+khC+dDYpGrtD9rXLRMgM3rqSHD0nlJ4XnWPIvWJ
fzpfP8VCgTKSzTu4+CbTGkAjS+4RcGsCWzA7Bb7tVOnVmZhc7zgbBAPqignq5HLsZsveXP
fE0ARJaIXrN5K/fnAAAAMQDY4Wa4byuyNlHQ8qU12nRpfFy8uF0Ku6JTWI58wfvznYuNWO
S5Af38OgpZ7sTstvAAAAAOdGhyb3dhd2F5LXRlc3QB
-----END OPENSSH PRIVATE KEY-----";
const RSA_2048: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAABFwAAAAdzc2gtcn
NhAAAAAwEAAQAAAQEAs7WPjn8N6zb0/rFrXhF8Srsn+iQwFSUhZSBy17y1erzqSasnO88L
KIyxLf+T4OaHOLkQ+7NLc/iCKK+u2MsYZwyVBWWsRZ9jPB2V88tVNAn2p6pXabS5P4VaVu
pxyoBmeGDvWrNeZ7AwCC+tAI3s1sy96yJSYpg4n8c4YM+DiQ0yxI+mJGrikXahK3AgFKMZ
8MpSffQnaSt9Ii7vr2wawlRfyA6+jDuGRSWpvc7HiOMrDCDF5QjsK12lWeCw6OFviGlGAW
JmgxwUJhJ6fpxUOh/t727Lv75CUZlmK3K/fIENlKpruLgyzjWyjH0oFi74VMPhahGy9UIe
ECxMRQcVEQAAA8g4l+LWOJfi1gAAAAdzc2gtcnNhAAABAQCztY+Ofw3rNvT+sWteEXxKuy
f6JDAVJSFlIHLXvLV6vOpJqyc7zwsojLEt/5Pg5oc4uRD7s0tz+IIor67YyxhnDJUFZaxF
n2M8HZXzy1U0CfanqldptLk/hVpW6nHKgGZ4YO9as15nsDAIL60AjezWzL3rIlJimDifxz
hgz4OJDTLEj6YkauKRdqErcCAUoxnwylJ99CdpK30iLu+vbBrCVF/IDr6MO4ZFJam9zseI
4ysMIMXlCOwrXaVZ4LDo4W+IaUYBYmaDHBQmEnp+nFQ6H+3vbsu/vkJRmWYrcr98gQ2Uqm
u4uDLONbKMfSgWLvhUw+FqEbL1Qh4QLExFBxURAAAAAwEAAQAAAQAOxeiouqoewXRPca9V
WtOgYxVMu2fWfShrI0k9ke5LSjdqWe8OPB17NmGkWePCs8C++Xu7bUhRHsc4aATUHpIBeq
fPe0W3rXwfZ4E5uufksML9koPAFVK7NY+xIHG9R2PlFnbmumMS3Al+ysiKiKBFIiykpTwn
jcLt45cvYi+6dt87nIhfdsAyzx35Y4ToZC6KN9pBXoqX/vQnwyeDGtOtpoTeSACsIf3bOs
5QAFyqxlm2VVLTBMQHyYgBb68uLi7BanC5mjQv/LHNl/sD7d86tnA4Syjlztfvp+nZPPS5
1TuoPY+bVVIBtSKyPkyE45gRcFhZ/Hr444s5DcIGcfY/AAAAgQDg7/ULwKLjkh6gtVSJxI
4LXupIzV3hU5iveZw2ifOA/5HKq4FAKmfg1QHWXUsheS0mLI+GP5blzzo4LY6UYhbWx6iM
YCpCa6MwmwR0RKJWwazxNMs8pR7zNPVG+lxacThGUuO7kk9mrOKJLv4O6mzMiAx7/WUPKd
gONacSVwlAkwAAAIEA9Bp7QLNQGiz/RLUvlKefX6v+0KTcZusrux+OWjbB0nbhphb659Ze
8qFjQmbRr7KS6sC1Z5tnyGjSV9iueBxOhsm1FXJp/NQRrhPu9iibrnJ+/kwQsAVuwyg7bx
UKwtHHVezZ8prlM7cVRMK4QqmmPF5cTJxN7hpUtLlcgoBFAEcAAACBALx3rML0yxCLdoo4
jRTBYKCdNMiFBTjN8eAmWHynquL9GziexAL9fH8+hA8Pxoj+TG02rSYO6txQpFqxOiztGy
UEHhNVT7ZYEMy+BPtY+kvliGuZm8bc/J1h96j2Mt0+gavNGuqX1B7m48cIFqMs/3t0wev7
ghoVd9MJdEompQPnAAAADnRocm93YXdheS10ZXN0AQIDBA==
-----END OPENSSH PRIVATE KEY-----";
const RSA_1024: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAlwAAAAdzc2gtcn
NhAAAAAwEAAQAAAIEAuIrr/4Px04bsjS123pWvQxDGzQCM2sVpeyZdUQvaprdbvtRCKBPt
JIeofXKQeLDz6AKVuOMsPkuEFxrgUxYDvSVqs+yJgas7SmCEe2/Pth9ppNSTrZFuBrlV2S
LNE/U2h55hVa2yUbiv09lM5fBkIk2bNBCzzyDkqedqg3E+TksAAAIIzbXX9c211/UAAAAH
c3NoLXJzYQAAAIEAuIrr/4Px04bsjS123pWvQxDGzQCM2sVpeyZdUQvaprdbvtRCKBPtJI
eofXKQeLDz6AKVuOMsPkuEFxrgUxYDvSVqs+yJgas7SmCEe2/Pth9ppNSTrZFuBrlV2SLN
E/U2h55hVa2yUbiv09lM5fBkIk2bNBCzzyDkqedqg3E+TksAAAADAQABAAAAgFF34t+WXD
fJpLxeic+RvSGaUmlGCOi7pelb8m5JEWnwIGyKP/p5cYNi8BsRbH4bgFG4cmiAwZNuuw2I
K+gCG/uwTuVdJA11jRjKDI3AXc5LlDs31GQQi4IEp5yFTyZ076M0kTczXCnltyPPoB8gpI
qQQwnP7L7s/FvVcyIrxjnBAAAAQG+8uWbaQe8Dzj/vsipKE76Z4scH51RPv22VCudbTVc1
oUhHMzX5HNCVD55Lq5Kd+5eRbSZ1pbo3SnoMJYKgSOoAAABBAOUz38wgbmeOVvE5u1WUUp
Sg28xSjFt9UPvZykVYUSR3kKj004SpJSpy6uQBftQgIC2NxVrZEF5g2U2Pf3rB5iMAAABB
AM4eW2ZMvNHT+BQte1xHpZLnBZb2u98NrKSEk9Rl9/m2gSHo2Od+NWw3O8odgjcGpK4AP2
8dryLTlYyFeR/bdbkAAAAOdGhyb3dhd2F5LXRlc3QBAgMEBQ==
-----END OPENSSH PRIVATE KEY-----";
const EC_PEM: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIACO7WhfmFsNvIt3qY8w5sjsP+a7UqUWOcGyQvcFHHL0oAoGCCqGSM49
AwEHoUQDQgAENcuqctZWaKad4c0UBZ4GmLIVsOzGt0PWwGtdh9PaEmoz62vzz0as
eTU0VaNMBY3PXIDuaAo22cw/+7Ei0FWSRw==
-----END EC PRIVATE KEY-----";
const DSA: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAABsQAAAAdzc2gtZH
NzAAAAgQC894mFoH+7DIUv6FWFAlKgUByWR6b95y46brCamt/2Oq0v08Ro2LkqlDkhhXtI
gKo5Zj38Z4zY7knF3sgE8bFl7K9wcAjaAbqHk30E0pqoa8rDM9k49bknLu87AFXhAGqZWi
D/mhTyHB4unMD9a217P61c3skKmTrmOI6XLq4gxQAAABUA9ZaxYHVUAwPN2v8KZoyORW0U
iosAAACAB7+k1Ky12HzcvXJyYjVmElvqo5Y4pCw5QgiOdAqrjUoMygyMoaOpFRRl6Xju31
QUoQEUMO7HZHGgW1wt3es1QMPzfinyurTdCixg2Hvmvt6qF1Sg5sSBML+7SizhGhmAjLTm
yxSSqZ3Cgt8nzI8cY9pMDdGCp0BDqiWzf5zIqU0AAACAEwmc3kv//LwVYXIS7oCvP+KPpw
FWuuWsrTU58jjktaEhnO+xWVUYI92Olp3UQAiJkNPC188KvWjbT9UfZ9SWyhWNoqhvDqFh
YTjiiq93I6/3MTEGQ54a/2wYzHGnWusVnwQ3kUWFz1h3WTXtkvZczzfiILR5OrqfmtMvac
nbda0AAAHgFE0z4hRNM+IAAAAHc3NoLWRzcwAAAIEAvPeJhaB/uwyFL+hVhQJSoFAclkem
/ecuOm6wmprf9jqtL9PEaNi5KpQ5IYV7SICqOWY9/GeM2O5Jxd7IBPGxZeyvcHAI2gG6h5
N9BNKaqGvKwzPZOPW5Jy7vOwBV4QBqmVog/5oU8hweLpzA/Wttez+tXN7JCpk65jiOly6u
IMUAAAAVAPWWsWB1VAMDzdr/CmaMjkVtFIqLAAAAgAe/pNSstdh83L1ycmI1ZhJb6qOWOK
QsOUIIjnQKq41KDMoMjKGjqRUUZel47t9UFKEBFDDux2RxoFtcLd3rNUDD834p8rq03Qos
YNh75r7eqhdUoObEgTC/u0os4RoZgIy05ssUkqmdwoLfJ8yPHGPaTA3RgqdAQ6ols3+cyK
lNAAAAgBMJnN5L//y8FWFyEu6Arz/ij6cBVrrlrK01OfI45LWhIZzvsVlVGCPdjpad1EAI
iZDTwtfPCr1o20/VH2fUlsoVjaKobw6hYWE44oqvdyOv9zExBkOeGv9sGMxxp1rrFZ8EN5
FFhc9Yd1k17ZL2XM834iC0eTq6n5rTL2nJ23WtAAAAFQCFFTALlEuxA5G239MjN5MgqdOT
9gAAAAdyb290QHZtAQID
-----END OPENSSH PRIVATE KEY-----";
const ED25519_PUB: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILRyL9ifwQ06tsDEu3OiXKfYqD537Bl+VmurQ47b35Ih";
const ECDSA_PUB: &str = "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBMgvpIQvnQ2KRq7Q/a1y0TIDN66khw9J5SeF51jyL1iX86Xz/FQoEyks07uPgm0xpAI0vuEXBrAlswOwW+7VTp1ZmYXO84GwQD6ooJ6uRy7GbL3lz3xNAESWiF6zeSv35w==";

const NOW: OffsetDateTime = datetime!(2026-11-23 18:00 UTC);

fn secret(type_: &str, data: &[(&str, &str)]) -> Secret {
    let data: BTreeMap<String, ByteString> = data
        .iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
        .collect();
    Secret {
        type_: Some(type_.into()),
        data: Some(data),
        ..Secret::default()
    }
}

/// `Deny data[ssh-privatekey]: …` lines: severity, field and message at once.
fn check(secret: &Secret, rules: &SecretRules) -> Vec<String> {
    let input = Input::new(secret, rules, NOW);
    let mut out = Vec::new();
    if input.secret_type() == super::super::SSH_AUTH {
        validate(&input, &mut out);
    } else {
        validate_git_sync_fields(&input, &mut out);
    }
    out.iter()
        .map(|v| format!("{:?} {v}", v.severity))
        .collect()
}

struct Case {
    name: &'static str,
    type_: &'static str,
    data: Vec<(&'static str, String)>,
    rules: SecretRules,
    want: Vec<String>,
}

/// An ssh-auth secret whose `ssh-privatekey` is `key`.
fn key_case(name: &'static str, key: &str, want: &[&str]) -> Case {
    case(name, &[("ssh-privatekey", key)], want)
}

fn case(name: &'static str, data: &[(&'static str, &str)], want: &[&str]) -> Case {
    Case {
        name,
        type_: "kubernetes.io/ssh-auth",
        data: data.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        rules: SecretRules::default(),
        want: want.iter().map(|w| w.to_string()).collect(),
    }
}

fn with_rules(mut c: Case, f: impl FnOnce(&mut SecretRules)) -> Case {
    f(&mut c.rules);
    c
}

fn opaque(mut c: Case) -> Case {
    c.type_ = "Opaque";
    c
}

fn cases() -> Vec<Case> {
    let passphrase =
        "Deny data[ssh-privatekey]: is passphrase-protected; git-sync needs an unencrypted key";
    let small = "Deny data[ssh-privatekey]: RSA key is 1024 bits; policy requires at least 2048";
    let invalid_line =
        |n: usize| format!("Deny data[known_hosts]: line {n} is not a valid known_hosts entry");
    let ed_pkcs8 = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    let p256 = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let spki_pem = {
        let der = p256.subject_public_key_info();
        let body = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der);
        format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n")
    };
    // Half of the body lines, as when a copy-paste stops early.
    let truncated: String = {
        let lines: Vec<&str> = RSA_2048.lines().collect();
        let mut cut = lines[..lines.len() / 2].to_vec();
        cut.push("-----END OPENSSH PRIVATE KEY-----");
        cut.join("\n")
    };
    let corrupt_pem = RSA_1024_PKCS1.replace("MIICXQIBAAKBgQ", "MIICXQIBAAKBgA");
    let good_hosts = format!(
        "# team-a git servers\n\
         github.com {ED25519_PUB}\n\n\
         \t[git.example.com]:2222,10.0.0.7 {ECDSA_PUB} host key\n\
         |1|I6sfVQWu8hMFAsZpBQYtxMx3kcU=|0SuKClT62pilIhurbq4AfxLH96Q= {ED25519_PUB}\n\
         @cert-authority *.example.com {ED25519_PUB}\n\
         @revoked old.example.com {ECDSA_PUB}\n"
    );
    let bad_hosts = format!(
        "github.com {ED25519_PUB}\n\
         # comment\n\
         github.com ssh-ed25519 {PLANTED}\n\
         {PLANTED}\n\
         @{PLANTED} github.com {ED25519_PUB}\n\
         github.com {ED25519_PUB}\n"
    );
    let many_bad = format!("{PLANTED}\n").repeat(12);
    let line_errors: Vec<String> = (1..=10).map(invalid_line).collect();
    let mut many_want: Vec<&str> = line_errors.iter().map(String::as_str).collect();
    many_want.push("Deny data[known_hosts]: 2 more lines are not valid known_hosts entries");
    let bad_hosts_want = [invalid_line(3), invalid_line(4), invalid_line(5)];
    let bad_hosts_want: Vec<&str> = bad_hosts_want.iter().map(String::as_str).collect();
    let git_sync_want = [
        "Deny data[ssh]: is passphrase-protected; git-sync needs an unencrypted key".to_string(),
        invalid_line(1),
    ];
    let git_sync_want: Vec<&str> = git_sync_want.iter().map(String::as_str).collect();

    vec![
        key_case("ed25519", ED25519, &[]),
        key_case("ecdsa P-384", ECDSA_P384, &[]),
        key_case("rsa 2048", RSA_2048, &[]),
        key_case(
            "key with CRLF line ends",
            &ED25519.replace('\n', "\r\n"),
            &[],
        ),
        key_case("rsa 1024", RSA_1024, &[small]),
        with_rules(key_case("rsa 1024, policy allows it", RSA_1024, &[]), |r| {
            r.ssh.min_rsa_bits = 1024
        }),
        key_case("rsa 1024, legacy PEM", RSA_1024_PKCS1, &[small]),
        key_case("ecdsa, legacy PEM", EC_PEM, &[]),
        key_case("ed25519, PKCS#8 PEM", &ed_pkcs8.serialize_pem(), &[]),
        key_case("ecdsa, PKCS#8 PEM", &p256.serialize_pem(), &[]),
        key_case(
            "legacy PEM that does not parse",
            &corrupt_pem,
            &["Deny data[ssh-privatekey]: is not a valid PEM private key"],
        ),
        key_case("encrypted OpenSSH key", ED25519_ENCRYPTED, &[passphrase]),
        with_rules(
            key_case("encrypted, policy allows it", ED25519_ENCRYPTED, &[]),
            |r| r.ssh.allow_passphrase = true,
        ),
        key_case("encrypted legacy PEM", LEGACY_ENCRYPTED, &[passphrase]),
        key_case("encrypted PKCS#8", ENCRYPTED_PKCS8, &[passphrase]),
        key_case(
            "public key line",
            &format!("{ED25519_PUB} me@laptop\n"),
            &["Deny data[ssh-privatekey]: is a public key; ssh-privatekey needs the private key"],
        ),
        key_case(
            "PEM public key",
            &spki_pem,
            &["Deny data[ssh-privatekey]: is a public key; ssh-privatekey needs the private key"],
        ),
        key_case(
            "RFC 4716 public key",
            "---- BEGIN SSH2 PUBLIC KEY ----\nAAAA\n---- END SSH2 PUBLIC KEY ----\n",
            &["Deny data[ssh-privatekey]: is a public key; ssh-privatekey needs the private key"],
        ),
        key_case(
            "truncated key",
            &truncated,
            &[
                "Deny data[ssh-privatekey]: is not a valid OpenSSH private key (truncated or corrupted)",
            ],
        ),
        with_rules(
            key_case(
                "algorithm not allowed",
                ED25519,
                &["Deny data[ssh-privatekey]: key algorithm ed25519 is not allowed (allowed: rsa)"],
            ),
            |r| r.ssh.allowed_algorithms = vec!["rsa".into()],
        ),
        with_rules(
            key_case("algorithm allowed, any case", ECDSA_P384, &[]),
            |r| r.ssh.allowed_algorithms = vec!["ECDSA".into()],
        ),
        key_case(
            "dsa is not among the defaults",
            DSA,
            &[
                "Deny data[ssh-privatekey]: key algorithm dsa is not allowed (allowed: ed25519, ecdsa, rsa)",
            ],
        ),
        with_rules(
            key_case(
                "encrypted, small and not allowed",
                LEGACY_ENCRYPTED,
                &[
                    passphrase,
                    "Deny data[ssh-privatekey]: key algorithm rsa is not allowed (allowed: ed25519)",
                ],
            ),
            |r| r.ssh.allowed_algorithms = vec!["ed25519".into()],
        ),
        key_case(
            "garbage",
            PLANTED,
            &[
                "Deny data[ssh-privatekey]: is not an SSH private key (expected OpenSSH or PEM format)",
            ],
        ),
        key_case(
            "empty",
            "\n",
            &["Deny data[ssh-privatekey]: must not be empty"],
        ),
        case(
            "missing",
            &[("known_hosts", &good_hosts)],
            &["Deny data[ssh-privatekey]: required value is missing"],
        ),
        case(
            "good known_hosts",
            &[("ssh-privatekey", ED25519), ("known_hosts", &good_hosts)],
            &[],
        ),
        case(
            "bad known_hosts lines",
            &[("ssh-privatekey", ED25519), ("known_hosts", &bad_hosts)],
            &bad_hosts_want,
        ),
        case(
            "many bad known_hosts lines",
            &[("ssh-privatekey", ED25519), ("known_hosts", &many_bad)],
            &many_want,
        ),
        case(
            "known_hosts without entries",
            &[("ssh-privatekey", ED25519), ("known_hosts", "# none yet\n")],
            &["Warn data[known_hosts]: has no host keys"],
        ),
        opaque(case(
            "git-sync secret",
            &[("ssh", ED25519), ("known_hosts", &good_hosts)],
            &[],
        )),
        opaque(case(
            "git-sync secret, bad key and known_hosts",
            &[("ssh", ED25519_ENCRYPTED), ("known_hosts", PLANTED)],
            &git_sync_want,
        )),
        opaque(case(
            "git-sync secret, public key",
            &[("ssh", ED25519_PUB)],
            &["Deny data[ssh]: is a public key; ssh needs the private key"],
        )),
        opaque(case(
            "Opaque secret without git-sync key",
            &[("id_rsa", PLANTED), ("known_hosts", PLANTED)],
            &[],
        )),
        opaque(with_rules(
            case(
                "policy names more git-sync fields",
                &[("ssh", RSA_1024), ("identity", PLANTED)],
                &[
                    "Deny data[ssh]: RSA key is 1024 bits; policy requires at least 2048",
                    "Deny data[identity]: is not an SSH private key (expected OpenSSH or PEM format)",
                ],
            ),
            |r| r.ssh.git_sync_key_fields = vec!["ssh".into(), "identity".into(), "ssh".into()],
        )),
    ]
}

#[test]
fn table() {
    for c in cases() {
        let data: Vec<(&str, &str)> = c.data.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            check(&secret(c.type_, &data), &c.rules),
            c.want,
            "case {:?}",
            c.name
        );
    }
}

/// No violation quotes any part of a value: every 16-character window of every
/// non-armour line of every input is looked for in every field and message.
#[test]
fn messages_never_contain_secret_material() {
    for c in cases() {
        let data: Vec<(&str, &str)> = c.data.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let text = check(&secret(c.type_, &data), &c.rules).join("\n");
        assert!(!text.contains("PLANTED"), "case {:?}: {text}", c.name);
        for (_, value) in &c.data {
            for line in value.lines().filter(|l| !l.starts_with("-----")) {
                let chars: Vec<char> = line.chars().collect();
                for w in chars.windows(16) {
                    let w: String = w.iter().collect();
                    assert!(!text.contains(&w), "case {:?} leaks {w:?}: {text}", c.name);
                }
            }
        }
    }
}

/// Findings about each key field of every case, from `check_private_key` with `cache`.
fn key_findings(c: &Case, cache: &VerdictCache<Result<KeyFacts, String>>) -> Vec<Vec<Violation>> {
    let names: Vec<&str> = if c.type_ == "Opaque" {
        c.rules
            .ssh
            .git_sync_key_fields
            .iter()
            .map(String::as_str)
            .collect()
    } else {
        vec![PRIVATE_KEY]
    };
    let data: Vec<(&str, &str)> = c.data.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let secret = secret(c.type_, &data);
    let input = Input::new(&secret, &c.rules, NOW);
    names
        .iter()
        .filter_map(|name| Some((*name, input.data(name)?)))
        .map(|(name, value)| {
            let mut out = Vec::new();
            check_private_key(&input, name, value, cache, &mut out);
            out
        })
        .collect()
}

/// Every case's key fields, cold and then twice through one cache: the second pass is
/// answered from the cache alone, and facts cached under one case's policy give that
/// policy's findings under the next (the table reuses keys across policies).
#[test]
fn cached_key_facts_equal_cold_checks() {
    let cold = VerdictCache::new("test", 0);
    let cache = VerdictCache::new("test", CAPACITY);
    let cases = cases();
    for pass in 0..2 {
        let misses = cache.stats().1;
        for c in &cases {
            let want = key_findings(c, &cold);
            assert_eq!(
                key_findings(c, &cache),
                want,
                "case {:?}, pass {pass}",
                c.name
            );
        }
        if pass == 1 {
            assert_eq!(cache.stats().1, misses, "the second pass only hits");
        }
    }
    let (hits, misses, len) = cache.stats();
    assert!(
        hits > misses && len > 10,
        "{hits} hits, {misses} misses, {len} entries"
    );

    // No 16-character window of any value's text is among the cached facts.
    let text = String::from_utf8_lossy(&cache.dump()).into_owned();
    for c in &cases {
        for (_, value) in &c.data {
            let chars: Vec<char> = value.chars().filter(|c| !c.is_whitespace()).collect();
            for w in chars.windows(16) {
                let w: String = w.iter().collect();
                if !w.contains("-----") {
                    assert!(!text.contains(&w), "case {:?}: cache holds {w:?}", c.name);
                }
            }
        }
    }
}

fn fixture(name: &str) -> Secret {
    let path = format!(
        "{}/../shared/fixtures/admission/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let review: kube::core::admission::AdmissionReview<Secret> =
        serde_json::from_slice(&bytes).unwrap();
    review.request.unwrap().object.unwrap()
}

/// The recorded API server requests, with the default policy.
#[test]
fn recorded_fixtures() {
    let table: &[(&str, &[&str])] = &[
        ("secret-create-ssh-auth-ed25519.json", &[]),
        ("secret-create-ssh-auth-ecdsa.json", &[]),
        ("secret-create-ssh-auth-rsa-pem-legacy.json", &[]),
        (
            "secret-create-ssh-auth-encrypted-key.json",
            &[
                "Deny data[ssh-privatekey]: is passphrase-protected; git-sync needs an unencrypted key",
            ],
        ),
        (
            "secret-create-ssh-auth-public-key-by-mistake.json",
            &["Deny data[ssh-privatekey]: is a public key; ssh-privatekey needs the private key"],
        ),
        ("secret-create-opaque-ssh-key-git-sync-keys.json", &[]),
        ("secret-create-opaque-ssh-key-id_ed25519.json", &[]),
    ];
    let rules = SecretRules::default();
    for (name, want) in table {
        assert_eq!(check(&fixture(name), &rules), *want, "{name}");
    }
}

/// The git-sync fixture's key is checked at all: with a policy that refuses ed25519, the
/// same file is denied.
#[test]
fn git_sync_fixture_key_is_checked() {
    let mut rules = SecretRules::default();
    rules.ssh.allowed_algorithms = vec!["rsa".into()];
    let got = check(
        &fixture("secret-create-opaque-ssh-key-git-sync-keys.json"),
        &rules,
    );
    assert_eq!(
        got,
        ["Deny data[ssh]: key algorithm ed25519 is not allowed (allowed: rsa)"]
    );
}
