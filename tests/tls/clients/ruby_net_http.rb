# tests/tls/clients/ruby_net_http.rb - Ruby's Net::HTTP over OpenSSL (one
# connection, kept alive across --repeat). The flags and exit codes of
# rawcli.py. Net::HTTP decodes gzip/deflate only when it set
# Accept-Encoding itself; this client sends "Accept-Encoding: identity"
# unless --header gives one, so --out holds the bytes as sent.
require 'net/http'
require 'openssl'
require 'uri'

a = { headers: [], repeat: 1 }
args = ARGV.dup
until args.empty?
  k = args.shift
  v = args.shift or abort("missing value for #{k}")
  case k
  when '--url' then a[:url] = URI(v)
  when '--body' then a[:body] = v.start_with?('@') ? File.binread(v[1..]) : v
  when '--method' then a[:method] = v
  when '--header'
    hk, sep, hv = v.partition(':')
    abort('--header wants K:V') if sep.empty?
    a[:headers] << [hk.strip, hv.strip]
  when '--cafile' then a[:cafile] = v
  when '--out' then a[:out] = v
  when '--repeat' then a[:repeat] = Integer(v)
  else abort("unknown flag #{k}")
  end
end
abort('--url is required') unless a[:url]
a[:method] ||= a[:body] ? 'POST' : 'GET'
out = a[:out] ? File.open(a[:out], 'wb') : nil
statuses = []
err = nil
begin
  u = a[:url]
  Net::HTTP.start(u.host, u.port, use_ssl: true, ca_file: a[:cafile],
                  verify_mode: OpenSSL::SSL::VERIFY_PEER, read_timeout: 60) do |http|
    a[:repeat].times do
      req = Net::HTTPGenericRequest.new(a[:method], !a[:body].nil?, true, u.request_uri)
      req['Accept-Encoding'] = 'identity'
      req['Content-Type'] = 'application/json' if a[:body]
      a[:headers].each { |hk, hv| req[hk] = hv }
      req.body = a[:body] if a[:body]
      http.request(req) do |res|
        res.read_body { |chunk| out&.write(chunk); out&.flush }
        statuses << res.code.to_i
      end
    end
  end
rescue StandardError => e
  err = e
end
out&.close
statuses.each { |s| puts "status=#{s}" }
if err
  puts "error=#{err.class}: #{err.message.lines.first&.chomp}"
  exit 4
end
exit(statuses.all? { |s| s >= 200 && s < 300 } ? 0 : 3)
