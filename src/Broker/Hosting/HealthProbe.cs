using System.Globalization;
using System.Net;
using HookBroker.Broker.Configuration;

namespace HookBroker.Broker.Hosting;

/// <summary>
/// <c>HookBroker.Broker --health</c>: asks the running broker's <c>/healthz</c> and exits 0 (healthy) or 1. It is the
/// container health check, because the runtime images have no curl or wget. It reads the same settings as the broker
/// (appsettings.json beside the binary, <c>HookBroker__*</c> variables, command-line switches), so it finds the port the
/// broker listens on.
/// </summary>
internal static class HealthProbe
{
    /// <summary>The command-line switch that runs the probe instead of the broker.</summary>
    public const string Switch = "--health";

    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(3);

    /// <summary>True when the command line asks for the probe.</summary>
    public static bool IsRequested(string[] args) => args.Contains(Switch, StringComparer.Ordinal);

    /// <summary>Requests <c>/healthz</c> once; 0 when it answers 200, 1 otherwise (the reason goes to stderr).</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        var options = ReadOptions([.. args.Where(a => a != Switch)]);
        var uri = new Uri($"http://{ProbeHost(options.ListenAddress)}:{options.HttpPort.ToString(CultureInfo.InvariantCulture)}/healthz");
        using var http = new HttpClient { Timeout = RequestTimeout };
        try
        {
            using var response = await http.GetAsync(uri);
            if (response.StatusCode == HttpStatusCode.OK)
            {
                return 0;
            }

            await Console.Error.WriteLineAsync($"hookbroker: {uri} answered {(int)response.StatusCode} {response.ReasonPhrase}");
        }
        catch (HttpRequestException ex)
        {
            await Console.Error.WriteLineAsync($"hookbroker: {uri} is not answering: {ex.Message}");
        }
        catch (TaskCanceledException)
        {
            await Console.Error.WriteLineAsync($"hookbroker: {uri} did not answer within {RequestTimeout.TotalSeconds:0} s");
        }

        return 1;
    }

    private static BrokerOptions ReadOptions(string[] args)
    {
        // The broker's own sources, in the order WebApplication.CreateBuilder reads them.
        var environment = Environment.GetEnvironmentVariable("ASPNETCORE_ENVIRONMENT")
            ?? Environment.GetEnvironmentVariable("DOTNET_ENVIRONMENT")
            ?? "Production";
        var configuration = new ConfigurationBuilder()
            .SetBasePath(AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json", optional: true)
            .AddJsonFile($"appsettings.{environment}.json", optional: true)
            .AddEnvironmentVariables()
            .AddCommandLine(args)
            .Build();
        return configuration.GetSection(BrokerOptions.Section).Get<BrokerOptions>() ?? new BrokerOptions();
    }

    /// <summary>The address to ask: loopback when the broker listens on every interface, else the address itself.</summary>
    private static string ProbeHost(string listenAddress)
    {
        if (!IPAddress.TryParse(listenAddress, out var address) || address.Equals(IPAddress.Any))
        {
            return "127.0.0.1";
        }

        if (address.Equals(IPAddress.IPv6Any))
        {
            return "[::1]";
        }

        return address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{address}]" : address.ToString();
    }
}
