namespace HookBroker.Client.Internal;

/// <summary>Which broker nodes a client or worker connects to (<c>Address</c> or <c>Addresses</c>), and their validation.</summary>
internal static class BrokerAddresses
{
    /// <summary><paramref name="addresses"/> when it lists any, otherwise <paramref name="address"/> alone.</summary>
    public static IReadOnlyList<Uri> Effective(Uri? address, IList<Uri>? addresses) =>
        addresses is { Count: > 0 } ? [.. addresses] : address is null ? [] : [address];

    /// <summary>
    /// Adds a message naming the setting for each problem: <c>Address</c> (used alone) must be an absolute http(s) URI;
    /// every entry of <c>Addresses</c> must be an absolute http(s) URI of just scheme, host and port, listed once, and all
    /// entries must share one scheme (a channel is either plaintext or TLS).
    /// </summary>
    /// <param name="owner">The options' name in messages, e.g. <c>HookWorkerOptions</c>.</param>
    /// <param name="address">The single address.</param>
    /// <param name="addresses">The broker nodes; when it lists any, <paramref name="address"/> is not used.</param>
    /// <param name="failures">Where the messages go.</param>
    public static void Validate(string owner, Uri? address, IList<Uri>? addresses, ICollection<string> failures)
    {
        if (addresses is not { Count: > 0 })
        {
            if (!IsHttpUri(address))
            {
                failures.Add($"{owner}.Address must be an absolute http(s) URI (got '{address}'); for several broker nodes set {owner}.Addresses.");
            }

            return;
        }

        Uri? first = null;
        var seen = new HashSet<(string Host, int Port)>();
        for (var i = 0; i < addresses.Count; i++)
        {
            var entry = addresses[i];
            var name = $"{owner}.Addresses[{i}]";
            if (!IsHttpUri(entry))
            {
                failures.Add($"{name} must be an absolute http(s) URI such as http://broker-1:5000 (got '{entry}').");
                continue;
            }

            // Only host and port reach the balancer: a path, query or user info would be dropped silently.
            if (entry.AbsolutePath != "/" || entry.Query.Length > 0 || entry.Fragment.Length > 0 || entry.UserInfo.Length > 0)
            {
                failures.Add($"{name} must be only scheme, host and port, such as http://broker-1:5000 (got '{entry}').");
            }

            if (first is null)
            {
                first = entry;
            }
            else if (entry.Scheme != first.Scheme)
            {
                failures.Add(
                    $"{owner}.Addresses must all use the same scheme (one connection setting, plaintext or TLS, for every node): " +
                    $"{name} is '{entry}' but {owner}.Addresses[0] is '{first}'.");
            }

            if (!seen.Add((entry.IdnHost.ToUpperInvariant(), entry.Port)))
            {
                failures.Add($"{name} lists '{entry}' a second time.");
            }
        }
    }

    private static bool IsHttpUri(Uri? uri) =>
        uri is { IsAbsoluteUri: true } && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps) && uri.Host.Length > 0;
}
