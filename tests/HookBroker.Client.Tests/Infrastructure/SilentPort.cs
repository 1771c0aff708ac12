using System.Net;
using System.Net.Sockets;

namespace HookBroker.Client.Tests.Infrastructure;

/// <summary>
/// A loopback port where a TCP connect neither succeeds nor is refused, like a host that went away: a listener with a
/// backlog of 0 that never accepts, its queue filled by one connection, so Linux drops every further SYN and a connect
/// hangs until the caller's timeout.
/// </summary>
internal sealed class SilentPort : IDisposable
{
    private readonly Socket listener;
    private readonly Socket filler;

    private SilentPort(Socket listener, Socket filler)
    {
        this.listener = listener;
        this.filler = filler;
    }

    public Uri Address => new($"http://127.0.0.1:{((IPEndPoint)listener.LocalEndPoint!).Port}");

    public static async Task<SilentPort> OpenAsync(CancellationToken cancellationToken)
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var filler = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            listener.Listen(0);
            await filler.ConnectAsync(listener.LocalEndPoint!, cancellationToken);
            var port = new SilentPort(listener, filler);
            await port.AssertSilentAsync(cancellationToken);
            return port;
        }
        catch
        {
            filler.Dispose();
            listener.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        filler.Dispose();
        listener.Dispose();
    }

    /// <summary>Checks the trick works on this kernel: a further connect must still be pending after 300 ms.</summary>
    private async Task AssertSilentAsync(CancellationToken cancellationToken)
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromMilliseconds(300));
        try
        {
            await probe.ConnectAsync(listener.LocalEndPoint!, timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return; // still connecting: silent
        }
        catch (SocketException)
        {
            // refused: not silent
        }

        Assert.Skip("This kernel completes or refuses connects to a full listen queue, so a silent node cannot be simulated here.");
    }
}
