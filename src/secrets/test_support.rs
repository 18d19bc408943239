//! Test-only helpers and throwaway key material shared by the secret checks' tests.
//! The keys were generated for these tests (`openssl`, `ssh-keygen`) and protect nothing.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// A secret named `name` of type `ty` with the given data entries.
pub fn secret(name: &str, ty: &str, data: &[(&str, &[u8])]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("team-a".to_owned()),
            ..ObjectMeta::default()
        },
        type_: Some(ty.to_owned()),
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Secret::default()
    }
}

pub const ENCRYPTED_PKCS8: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----
MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAhM5nMpOk5wXQICCAAw
DAYIKoZIhvcNAgkFADAdBglghkgBZQMEAQIEEGCe35FM1zRMRxtdGjonl5YEgZBL
32sglt98k4YmbpSv8TJW4IYPK9HVtyshVA/74z5oR/sK573/9HYS4qhZSglKjwxs
POrZx2ziyaXCtnt9Q68jjTSHa//6uQ+iq2nGgqhsYuGK5j2rV57m8Pgpy1B0z8w6
sP8cF00bhrnRaZkGo6vX9m+0h2YFCDVDfkDPNnqjIizB16fhXj9K3slzGIVrfr8=
-----END ENCRYPTED PRIVATE KEY-----
";
pub const LEGACY_ENCRYPTED: &str = "-----BEGIN RSA PRIVATE KEY-----
Proc-Type: 4,ENCRYPTED
DEK-Info: AES-128-CBC,C61CCEFDE4DB4692F194BDF62F032226

ktauWW/glAxhxpCTNri/EBjjs007hgCzQDhf6MRcorZ0CpAeB6xrxqzqt9kYRSXK
TZXF+G8lfM1nNT3nm9cqt3NU2gVXW7ZUafNn4F5S5j5A7fGAG/1F0kXr6oK4QGYC
Bh4GZ1HC8XNbchsBgeNfrwaJxsJz/aQaa0qbXOUlhNUZbG/uT7/2KkQ2XCRJ2S40
fg+rFbSYUH5LFdMx6TAUEOTbKIdCuWinKc9XbNVW7k57rZxuiuLnEmQOhjtlPp8B
4N+nQJPXt6+zwEYXr9QlAMhvS+5YWK+ANTAnEDMK+6VUaSJDO4X4VRzXD0mAqNVs
jKLUOZ0DdqapY9iWkfaogVCLUtUzhKLNs3POq8rDS7OSoswnq7DjUyDGvbVxm5gT
AuHIkKcD3v6IZkgtcrEeSuIXpGiOt52gpp1v5V9pnsl17ne+KNPZ5G3fv/If0WiC
2OesYxcPN1QIGf/AyHkreSSb3HMNfGJoa0U8KwKriV+if0hFaFWbLPQLrFGOjcB8
+Yut52sVVzX/4tclkNIfoBnIHeMaOWqA7Zlsn7T/r+/EwulbZsRcX8nPIeVK244W
EeJsXQVKdeJGKQ+xe8+06Q32UeAkNylOOwCeCPek+zQgGDG3ITqMPOa5ZXK3FDic
zhsQqMOTNCGbB2l/UPD0lJ6VnebhLb1lpctb+8EPcM5v2fOlmCNOcy+SYB+ldYq7
hmu2/OW8q1S4qbYMx9PmvJTLhUVqplQZOBBNfw3xjK+Y9Nv4jq1F6KR2GXVkqO7Z
9GjkRQIdfa1ouxp6NhB7Zb6z6GpwPhulPXcQc9Dm8TPfCL+38JBtUcW/ohLXe4/D
-----END RSA PRIVATE KEY-----
";
/// `ssh-keygen -t rsa -b 1024 -m PEM`: too small for either check.
pub const RSA_1024_PKCS1: &str = "-----BEGIN RSA PRIVATE KEY-----
MIICXQIBAAKBgQCzZvcfV9/+lZQKi7dWF+NcVvKDoNhjidTvSWi9Q1uXh1nab5Fi
CM2evIUEHqkBayN62sODPq32Bo4XbA6PukYY2Bx6HbfstqUa+LpC4ltln/0qVa4N
xTcR0Qid6CmBHlUanr1u5Sywfn/wKV3XfomRFZGkEUeLekP7cCAuJNbBGwIDAQAB
AoGASH68L+M/tc3V8+j/nf+rNZ5BA6XUq2yAKm3csFZuxa3BRn69HgN2q8V8buzA
2LzlqniKdxe2DmwZsSdOPxBD0IsBGUUpUMc5FkN3/AsTmv3IfMMEA9mi1LcJhOaY
rruG+CHY2KrzR53Lj5Mb3litwOmp19Bc3pQBUSYbKS/iqVECQQDdYI2JufFKkBmm
T/NwnbLFmkbWSYAFZIdkxkDOeaCi7dNb2llosx2bAkMjWVzB6JoibBdwqJUy9J3D
QpAQUhgzAkEAz3XUQSTVKpUmeZJ6zF5bRSYl9c0Fj2zJc0PmuOjFbFr+1NVQUamB
PxR9gXwDDy4tj9qcAUU8xzMqwd5ArmRreQJAJA/6fpkfyXm38/PKQGowGSiMqZPH
mxlJRQ1WuUvu8xuy9p+XOQsUo4+2yCdiiOQPV9Qr7VpJE8fte0V4mnAFKQJBAJQg
FEnjC5SY49y/uo/6+v3XbBkhpsuuJ/P10mHKSVPBcNvz5qI3/cFVVvtB2UlYdk2V
D/hUQD4WiXvcvaAGsTkCQQDVWzu7IX6daIOlYQ4uBuSpCgjaOjoiRUt0WnF3saE+
Pt7jN3n+Vc6KWEqXwUC2YxArFjxiARrGXGHsJTsRbKpJ
-----END RSA PRIVATE KEY-----
";
/// A planted value that must never show up in a violation.
pub const PLANTED: &str = "PLANTEDsecretVALUE0123456789abcd";
