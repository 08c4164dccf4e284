<?php
// tests/tls/clients/php_stream.php - PHP's https:// stream wrapper
// (fopen/fread with a stream context, what file_get_contents uses) over
// OpenSSL. The flags and exit codes of rawcli.py. HTTP/1.1 with
// "Connection: close" (the wrapper's default; one connection per request),
// so the wrapper de-chunks; it never decompresses. ignore_errors keeps
// the body of an error status.
$a = ['headers' => [], 'repeat' => 1, 'body' => null, 'method' => null,
      'cafile' => null, 'out' => null, 'url' => null];
for ($i = 1; $i < $argc; $i += 2) {
    $k = $argv[$i];
    $v = $argv[$i + 1] ?? null;
    if ($v === null) { fwrite(STDERR, "missing value for $k\n"); exit(2); }
    switch ($k) {
    case '--url': $a['url'] = $v; break;
    case '--body': $a['body'] = $v[0] === '@' ? file_get_contents(substr($v, 1)) : $v; break;
    case '--method': $a['method'] = $v; break;
    case '--header': $a['headers'][] = $v; break;
    case '--cafile': $a['cafile'] = $v; break;
    case '--out': $a['out'] = $v; break;
    case '--repeat': $a['repeat'] = (int)$v; break;
    default: fwrite(STDERR, "unknown flag $k\n"); exit(2);
    }
}
$method = $a['method'] ?? ($a['body'] !== null ? 'POST' : 'GET');
$headers = $a['headers'];
if ($a['body'] !== null && !preg_grep('/^content-type:/i', $headers))
    $headers[] = 'Content-Type: application/json';
$http = ['method' => $method, 'header' => $headers, 'ignore_errors' => true,
         'protocol_version' => 1.1, 'timeout' => 60];
if ($a['body'] !== null) $http['content'] = $a['body'];
$ssl = ['verify_peer' => true, 'verify_peer_name' => true];
if ($a['cafile'] !== null) $ssl['cafile'] = $a['cafile'];
$ctx = stream_context_create(['http' => $http, 'ssl' => $ssl]);
$out = $a['out'] !== null ? fopen($a['out'], 'wb') : null;
$statuses = [];
$err = null;
for ($n = 0; $n < $a['repeat'] && $err === null; $n++) {
    $f = @fopen($a['url'], 'rb', false, $ctx);
    if ($f === false) { $err = error_get_last()['message'] ?? 'fopen failed'; break; }
    $meta = stream_get_meta_data($f);
    $status = 0;
    foreach ($meta['wrapper_data'] as $h)          // the last status line wins
        if (preg_match('#^HTTP/\S+ (\d{3})#', $h, $m)) $status = (int)$m[1];
    while (!feof($f)) {
        $d = fread($f, 65536);
        if ($d === false) { $err = 'read failed'; break; }
        if ($out !== null && $d !== '') { fwrite($out, $d); fflush($out); }
    }
    fclose($f);
    $statuses[] = $status;
}
if ($out !== null) fclose($out);
foreach ($statuses as $s) echo "status=$s\n";
if ($err !== null) { echo "error=" . strtok($err, "\n") . "\n"; exit(4); }
foreach ($statuses as $s) if ($s < 200 || $s >= 300) exit(3);
exit(0);
