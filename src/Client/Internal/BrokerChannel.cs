using Grpc.Core;
using Grpc.Net.Client;
using Grpc.Net.Client.Balancer;
using Grpc.Net.Client.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace HookBroker.Client.Internal;

/// <summary>
/// The gRPC channel of a client or worker. One address: a plain channel, as before scale-out. Several addresses (broker
/// nodes sharing one storage): grpc-dotnet's client-side load balancing, a static resolver with every node and the
/// <c>round_robin</c> policy. Round robin keeps a connection to each node and sends each call (each retry attempt
/// included) to the next node whose connection is ready, so a dead node is skipped, a retry moves to another node, and the
/// load of stateless nodes is spread. (<c>pick_first</c> would send everything to one node, and, with one subchannel for
/// all addresses and one connect timeout for the whole attempt, a first node that silently drops packets would keep the
/// others from ever being tried.)
/// </summary>
internal sealed class BrokerChannel : IDisposable
{
    /// <summary>No ping answer within this delay of a ping drops the connection.</summary>
    private static readonly TimeSpan KeepAlivePingTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Silence on a connection after which a ping checks that its node is still there.</summary>
    private static readonly TimeSpan KeepAlivePingDelay = TimeSpan.FromSeconds(20);

    // The resolver ignores the address: it hands out the configured nodes.
    private const string BalancedTarget = "static:///hookbroker";

    private readonly ServiceProvider? services;

    private BrokerChannel(GrpcChannel channel, ServiceProvider? services)
    {
        Channel = channel;
        this.services = services;
    }

    public GrpcChannel Channel { get; }

    /// <summary>A channel to <paramref name="addresses"/> (validated by <see cref="BrokerAddresses.Validate"/>).</summary>
    /// <param name="addresses">One or more broker nodes, all http or all https.</param>
    /// <param name="connectTimeout">How long connecting to one node may take before that node counts as down.</param>
    /// <param name="loggerFactory">Where grpc-dotnet logs.</param>
    public static BrokerChannel Create(IReadOnlyList<Uri> addresses, TimeSpan connectTimeout, ILoggerFactory loggerFactory)
    {
        var options = new GrpcChannelOptions
        {
            LoggerFactory = loggerFactory,
            // Load balancing needs a SocketsHttpHandler without a ConnectCallback (grpc-dotnet sets its own).
            HttpHandler = new SocketsHttpHandler
            {
                EnableMultipleHttp2Connections = true,
                // A node that is down but does not refuse (host gone, packets dropped) is given up on after this long
                // instead of the operating system's minutes; grpc-dotnet applies it to each subchannel's connect too.
                ConnectTimeout = connectTimeout,
                // A connection whose node vanished without closing it is dropped after delay + timeout, idle or not,
                // so the balancer stops picking it before a raise waits on it.
                KeepAlivePingDelay = KeepAlivePingDelay,
                KeepAlivePingTimeout = KeepAlivePingTimeout,
                KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
                PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            },
        };
        if (addresses.Count == 1)
        {
            return new BrokerChannel(GrpcChannel.ForAddress(addresses[0], options), services: null);
        }

        var nodes = addresses.Select(a => new BalancerAddress(a.IdnHost, a.Port)).ToArray();
        var services = new ServiceCollection()
            .AddSingleton<ResolverFactory>(new StaticResolverFactory(_ => nodes))
            .BuildServiceProvider();
        try
        {
            options.ServiceProvider = services;
            // The target has no http(s) scheme, so the credentials say whether the connections use TLS.
            options.Credentials = addresses[0].Scheme == Uri.UriSchemeHttps ? ChannelCredentials.SecureSsl : ChannelCredentials.Insecure;
            options.ServiceConfig = new ServiceConfig { LoadBalancingConfigs = { new RoundRobinConfig() } };
            return new BrokerChannel(GrpcChannel.ForAddress(BalancedTarget, options), services);
        }
        catch
        {
            services.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        Channel.Dispose();
        services?.Dispose();
    }
}
