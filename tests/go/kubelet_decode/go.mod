module secretgate.test/kubeletdecode

go 1.22
