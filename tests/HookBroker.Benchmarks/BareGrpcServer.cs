using System.Diagnostics;
using System.Globalization;
using HookBroker.Tests.Infrastructure;

namespace HookBroker.Benchmarks;

/// <summary>
/// tests/HookBroker.BareGrpcServer (its Release or Debug build output, as for the broker): answers Raise at once. Hosted
/// like the broker (Kestrel endpoints, runtime settings), so the unary figure against it is the bare gRPC ceiling the
/// broker's unary raise is measured against.
/// </summary>
internal sealed class BareGrpcServer : LocalServer
{
    private readonly int[] _ports = FreePorts.Reserve(2);

    public int GrpcPort => _ports[0];

    public int HttpPort => _ports[1];

    public Uri Address => new($"http://127.0.0.1:{GrpcPort.ToString(CultureInfo.InvariantCulture)}");

    public static async Task<BareGrpcServer> StartAsync()
    {
        var server = new BareGrpcServer();
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";
        var dll = Path.Combine(RepoRoot(), "tests", "HookBroker.BareGrpcServer", "bin", configuration, "net10.0", "HookBroker.BareGrpcServer.dll");
        var start = new ProcessStartInfo("dotnet") { ArgumentList = { dll } };
        start.Environment["HookBroker__GrpcPort"] = server.GrpcPort.ToString(CultureInfo.InvariantCulture);
        start.Environment["HookBroker__HttpPort"] = server.HttpPort.ToString(CultureInfo.InvariantCulture);
        start.Environment["Logging__LogLevel__Default"] = "Warning";
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        await server.StartProcessAsync(start, async () =>
        {
            try
            {
                return (await http.GetAsync(new Uri($"http://127.0.0.1:{server.HttpPort.ToString(CultureInfo.InvariantCulture)}/healthz"))).IsSuccessStatusCode;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        });
        return server;
    }
}
