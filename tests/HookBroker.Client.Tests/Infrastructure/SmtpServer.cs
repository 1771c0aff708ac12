using System.Globalization;
using System.Net.Sockets;

namespace HookBroker.Client.Tests.Infrastructure;

/// <summary>
/// A real SMTP server for the tests: Debian's <c>python3-aiosmtpd</c> on a free loopback port, writing each message it
/// accepts into a Maildir. <see cref="StartAsync"/> skips the test, naming what is missing, when aiosmtpd is not
/// installed (scripts/test.sh installs it as root).
/// </summary>
internal sealed class SmtpServer : IAsyncDisposable
{
    private readonly SampleProcess process;
    private readonly string root;

    private SmtpServer(SampleProcess process, string root, int port)
    {
        this.process = process;
        this.root = root;
        Port = port;
    }

    public int Port { get; }

    /// <summary>The Maildir (created by the server on its first message).</summary>
    private string MailDir => Path.Combine(root, "maildir");

    public static async Task<SmtpServer> StartAsync(CancellationToken cancellationToken)
    {
        var python = await FindPythonWithAiosmtpdAsync(cancellationToken);
        if (python is null)
        {
            Assert.Skip("No SMTP server: python3 with the aiosmtpd module is missing (apt-get install python3-aiosmtpd; scripts/test.sh does as root).");
        }

        var root = Directory.CreateTempSubdirectory("hookbroker-smtp-").FullName;
        var port = FreePorts.Reserve(1)[0];
        // Python's Maildir creates the folder itself, and only when it does not exist yet.
        var server = new SmtpServer(
            SampleProcessOf(python, port, Path.Combine(root, "maildir")),
            root,
            port);
        try
        {
            await Poll.UntilAsync(
                async () =>
                {
                    server.process.ThrowIfExited();
                    using var client = new TcpClient();
                    try
                    {
                        await client.ConnectAsync("127.0.0.1", port, cancellationToken);
                        return true;
                    }
                    catch (SocketException)
                    {
                        return false;
                    }
                },
                TimeSpan.FromSeconds(20),
                $"aiosmtpd to listen on 127.0.0.1:{port}",
                cancellationToken);
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }

        return server;
    }

    /// <summary>The raw text of every message received so far.</summary>
    public IReadOnlyList<string> Messages()
    {
        var folder = Path.Combine(MailDir, "new");
        return Directory.Exists(folder) ? [.. Directory.GetFiles(folder).Select(File.ReadAllText)] : [];
    }

    public string LogTail => process.LogTail;

    public async ValueTask DisposeAsync()
    {
        await process.DisposeAsync();
        try
        {
            Directory.Delete(root, recursive: true);
        }
        catch (IOException)
        {
            // a leftover temp folder is harmless
        }
    }

    private static SampleProcess SampleProcessOf(string python, int port, string mailDir) => SampleProcess.StartCommand(
        "aiosmtpd", python, ["-m", "aiosmtpd", "-n", "-l", "127.0.0.1:" + port.ToString(CultureInfo.InvariantCulture), "-c", "aiosmtpd.handlers.Mailbox", mailDir]);

    /// <summary>Debian's python3 first: a python from pyenv or a venv on PATH does not see Debian's dist-packages.</summary>
    private static async Task<string?> FindPythonWithAiosmtpdAsync(CancellationToken cancellationToken)
    {
        foreach (var python in new[] { "/usr/bin/python3", "python3" })
        {
            try
            {
                var result = await ExternalCommand.RunAsync(python, ["-c", "import aiosmtpd"], TimeSpan.FromSeconds(20), cancellationToken);
                if (result.ExitCode == 0)
                {
                    return python;
                }
            }
            catch (System.ComponentModel.Win32Exception)
            {
                // not installed at that path
            }
        }

        return null;
    }
}
