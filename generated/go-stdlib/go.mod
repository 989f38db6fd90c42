module sse-server

go 1.22
