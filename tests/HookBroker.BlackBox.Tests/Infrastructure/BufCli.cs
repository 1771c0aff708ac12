using System.Text.Json;

namespace HookBroker.BlackBox.Tests.Infrastructure;

/// <summary>
/// The buf CLI installed from npm by scripts/test.sh, used as a raw gRPC client that knows nothing but what the broker's
/// server reflection tells it (the way a newcomer uses grpcurl or buf curl).
/// </summary>
internal sealed class BufCli
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(30);

    private BufCli(string path) => Path = path;

    public string Path { get; }

    /// <summary>The installed buf, or skips the calling test when it is missing.</summary>
    public static BufCli RequireInstalled()
    {
        var path = RepoPaths.Buf;
        if (!File.Exists(path))
        {
            Assert.Skip("buf not installed: run ./scripts/test.sh, which installs @bufbuild/buf from npm");
        }

        return new BufCli(path);
    }

    /// <summary><c>buf curl --list-services</c> through server reflection; one fully-qualified service per line.</summary>
    public Task<CommandResult> ListServicesAsync(Uri server, CancellationToken cancellationToken) =>
        CurlAsync(["--list-services", BaseUrl(server)], cancellationToken);

    /// <summary><c>buf curl --list-methods</c> through server reflection; one <c>service/method</c> per line.</summary>
    public Task<CommandResult> ListMethodsAsync(Uri server, CancellationToken cancellationToken) =>
        CurlAsync(["--list-methods", BaseUrl(server)], cancellationToken);

    /// <summary>
    /// Calls a unary method with a JSON request, schema from server reflection, and returns the JSON response (default
    /// values included). Throws with buf's output when the call fails.
    /// </summary>
    public async Task<JsonElement> CallAsync(Uri server, string method, string jsonRequest, CancellationToken cancellationToken)
    {
        var result = await CurlAsync(["--emit-defaults", "--data", jsonRequest, $"{BaseUrl(server)}/{method}"], cancellationToken);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"buf curl failed: {result}");
        }

        using var document = JsonDocument.Parse(result.StdOut);
        return document.RootElement.Clone();
    }

    private Task<CommandResult> CurlAsync(IReadOnlyList<string> arguments, CancellationToken cancellationToken) =>
        ExternalCommand.RunAsync(
            Path,
            ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--connect-timeout", "10", .. arguments],
            CommandTimeout,
            cancellationToken);

    private static string BaseUrl(Uri server) => server.GetLeftPart(UriPartial.Authority);
}
